"""Provably fair private tables: FAIR, the seeds in every SPIN and HIST entry, and client.py verify.

Through the real socket (both engines) and the real command line; the pockets a
``--seed`` daemon gives are worked out here with nothing but the documented
derivation (:func:`seeded_pockets`), so the other test modules use it too.
"""

from __future__ import annotations

import hashlib
import random
import re
import sqlite3
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import ROOT
from lineproto.client import Client, PermanentError
from lineproto.domain import fair
from lineproto.domain.roulette import BetsOpen, FairSeeds, FairSpin, Limits, SeedDraw, Table, parse_bet


def seeded_seeds(seed: int, table: int = 0) -> tuple[str, str]:
    """The server seed and client seed that table number ``table`` (0: the first to draw) gets under ``--seed``.

    The daemon draws each table's seeds from ``random.Random(seed)`` when first needed:
    the server seed's 256 bits, then the client seed's 64 (16 hex characters).
    """
    rng = random.Random(seed)
    for _ in range(table + 1):
        server = fair.new_server_seed(rng)
        client = rng.getrandbits(64).to_bytes(8, "big").hex()
    return server, client


def seeded_pockets(seed: int, count: int, wheel: str = "american", table: int = 0, start: int = 0) -> list[str]:
    """The pockets of ``count`` spins (nonces ``start``, ``start + 1``, ...) of table ``table`` under ``--seed``."""
    server, client = seeded_seeds(seed, table)
    pockets = 38 if wheel == "american" else 37
    return [
        fair.derive_pocket(server, fair.private_message(client, nonce), pockets)
        for nonce in range(start, start + count)
    ]


CLIENT_SCRIPT = [sys.executable, str(ROOT / "client.py")]
HEX64 = re.compile(r"[0-9a-f]{64}")


def client_py(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([*CLIENT_SCRIPT, *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT)


def login(daemon, name: str = "guest", password: str | None = None) -> Client:
    client = Client(daemon.host, daemon.port, timeout=10)
    client.login(name, password)
    return client


def refused(call) -> int:
    with pytest.raises(PermanentError) as refusal:
        call()
    return refusal.value.code


# --------------------------------------------------------------------------
# FAIR before play, the nonce in every spin, FAIR NEW reveals the committed seed
# --------------------------------------------------------------------------


def test_fair_commits_to_the_seed_before_play_and_fair_new_reveals_it(start_daemon):
    daemon = start_daemon(users=True)
    with login(daemon) as guest:
        before = guest.fair()
        assert HEX64.fullmatch(before.server_seed_hash) and before.server_seed is None
        assert re.fullmatch(r"[0-9a-f]{16}", before.client_seed) and before.nonce == 0
        assert guest.fair() == before  # asking again draws nothing new
        guest.bet("RED", 1)
        spins = [guest.spin() for _ in range(3)]
        assert [spin.nonce for spin in spins] == [0, 1, 2]
        assert guest.fair() == before._replace(nonce=3)
        revealed = guest.fair_new()
        assert revealed.server_seed is not None
        assert hashlib.sha256(revealed.server_seed.encode("ascii")).hexdigest() == before.server_seed_hash
        assert revealed.server_seed_hash != before.server_seed_hash and HEX64.fullmatch(revealed.server_seed_hash)
        assert (revealed.client_seed, revealed.nonce) == (before.client_seed, 0)
        message = before.client_seed
        assert [spin.pocket for spin in spins] == [
            fair.derive_pocket(revealed.server_seed, fair.private_message(message, nonce), 38) for nonce in range(3)
        ]
        assert guest.spin().nonce == 0  # the new seed starts at nonce 0
        assert guest.fair().server_seed is None  # only FAIR NEW reveals, and only the old seed
    assert revealed.server_seed not in daemon.log()


def test_the_client_seed_is_the_players_and_no_seed_changes_while_bets_are_open(start_daemon):
    daemon = start_daemon(users=True)
    with login(daemon) as guest:
        chosen = guest.fair_seed("lucky:7~!")
        assert chosen.client_seed == "lucky:7~!" and chosen.nonce == 0
        guest.bet("RED", 1)
        assert refused(lambda: guest.fair_seed("other")) == 537
        assert refused(guest.fair_new) == 537
        assert guest.fair() == chosen  # the refusals changed nothing
        spin = guest.spin()
        assert (spin.nonce, guest.fair().nonce) == (0, 1)
        for bad in ("x" * 65, "caf\u00e9"):
            assert refused(lambda bad=bad: guest.command(f"FAIR SEED {bad}")) == 501
        for line in ("FAIR SEED", "FAIR SEED a b", "FAIR OLD", "FAIR NEW now"):
            assert refused(lambda line=line: guest.command(line)) == 501, line
        assert guest.fair_seed("x" * 64).client_seed == "x" * 64
    with login(daemon, "dave", "hunter2") as dave:
        dave.bet("RED", 1)
        assert refused(lambda: dave.fair_seed("mine")) == 537


def test_a_seeded_daemon_spins_what_the_documented_derivation_gives(start_daemon):
    daemon = start_daemon("--seed", "7", users=True)
    server, client = seeded_seeds(7)
    with login(daemon) as guest:
        assert guest.fair() == (fair.seed_hash(server), client, 0, None)
        american = [guest.spin().pocket for _ in range(20)]
        guest.table("european")
        european = [guest.spin().pocket for _ in range(20)]
    assert american == seeded_pockets(7, 20)
    assert european == seeded_pockets(7, 20, "european", start=20)
    assert server not in daemon.log()


# --------------------------------------------------------------------------
# A registered player's seeds are durable with the spin, and HIST names them
# --------------------------------------------------------------------------


def test_a_registered_players_seeds_and_nonce_survive_a_restart_and_hist_names_them(start_daemon, tmp_path):
    db = str(tmp_path / "fair.db")
    daemon = start_daemon("--db", db, "--log-level", "debug", users=True)
    with login(daemon, "dave", "hunter2") as dave:
        dave.fair_seed("dave-picks")
        committed = dave.fair()
        dave.bet("RED", 5)
        pockets = [dave.spin().pocket for _ in range(2)]
    log = daemon.log()
    daemon.stop()
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "SELECT nonce, client_seed, server_seed_hash, pocket FROM spins ORDER BY id"
        ).fetchall()
        [stored] = connection.execute("SELECT server_seed FROM players WHERE name = 'dave'").fetchall()
    assert rows == [
        (0, "dave-picks", committed.server_seed_hash, pockets[0]),
        (1, "dave-picks", committed.server_seed_hash, pockets[1]),
    ]
    assert stored[0] not in log  # kept in the database, never in the log (not even at debug level)
    again = start_daemon("--db", db, users=True)
    with login(again, "dave", "hunter2") as dave:
        assert dave.fair() == committed._replace(nonce=2)
        history = dave.history(2)
    assert [(entry.pocket, entry.fair) for entry in history.entries] == [
        (pockets[1], ("american", 1, "dave-picks", committed.server_seed_hash)),
        (pockets[0], ("american", 0, "dave-picks", committed.server_seed_hash)),
    ]


def test_rounds_from_before_the_seeds_have_none_in_hist(tmp_path):
    from lineproto.store import SqliteStore, schema

    path = str(tmp_path / "old.db")
    fairness = next(i for i, step in enumerate(schema.MIGRATIONS) if "server_seed_hash" in step)
    connection = sqlite3.connect(path, isolation_level=None)
    for step in schema.MIGRATIONS[:fairness]:
        for statement in schema._statements(step):
            connection.execute(statement)
    connection.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(fairness),))
    connection.execute(
        "INSERT INTO players (name, wheel, bankroll, rounds, start_bankroll) VALUES ('dave', 'american', 100, 1, 100)"
    )
    connection.execute(
        "INSERT INTO spins (player, wheel, pocket, at, staked, returned, bankroll_after, round) "
        "VALUES ('dave', 'american', '0', '2026-12-01T10:00:00+00:00', 0, 0, 100, 1)"
    )
    connection.close()
    store = SqliteStore(path)
    try:
        assert store.load_table("dave", Limits()).seeds is None  # drawn at the next FAIR or SPIN
        [old] = store.history("dave", 10)
        assert (old.pocket, old.fair) == ("0", None)
    finally:
        store.close()


# --------------------------------------------------------------------------
# client.py verify: every spin confirmed, a changed pocket caught
# --------------------------------------------------------------------------


def verify(daemon, *args: str) -> subprocess.CompletedProcess:
    return client_py("verify", "--port", str(daemon.port), "--user", "dave", *args, stdin="hunter2\n")


def test_verify_confirms_every_spin_and_catches_one_changed_pocket(start_daemon, tmp_path):
    db = str(tmp_path / "verify.db")
    daemon = start_daemon("--db", db, users=True)
    with login(daemon, "dave", "hunter2") as dave:
        pockets = [dave.spin().pocket for _ in range(5)]
    done = verify(daemon, "--reveal")
    assert done.returncode == 0, done.stderr
    [seed] = re.findall(r"^revealed server seed ([0-9a-f]{64});", done.stdout, re.M)
    for nonce, pocket in enumerate(pockets):
        assert f"round {nonce + 1}, nonce {nonce}: {pocket} match\n" in done.stdout
    assert done.stdout.endswith("5 match, 0 mismatch, 0 not revealed yet\n")
    daemon.stop()

    other = "0" if pockets[2] != "0" else "1"  # one pocket changed behind the daemon's back
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE spins SET pocket = ? WHERE nonce = 2", (other,))
    again = start_daemon("--db", db, users=True)
    caught = verify(again, "--server-seed", seed.upper())
    assert caught.returncode == 1, caught.stderr
    assert f"round 3, nonce 2: MISMATCH: the history says {other}, the seed gives {pockets[2]}\n" in caught.stdout
    assert caught.stdout.count(" match\n") == 4
    assert caught.stdout.endswith("4 match, 1 mismatch, 0 not revealed yet\n")


def test_verify_says_what_it_cannot_check_and_refuses_bad_options(start_daemon):
    daemon = start_daemon(users=True)
    with login(daemon, "dave", "hunter2") as dave:
        dave.spin()
    unrevealed = verify(daemon)
    assert unrevealed.returncode == 1
    assert "round 1, nonce 0: server seed " in unrevealed.stdout and "not revealed yet" in unrevealed.stdout
    assert unrevealed.stderr.strip().endswith(
        "no spin to check: reveal its server seed (--reveal or --server-seed HEX)"
    )
    for bad in (("--server-seed", "abc"), ("--count", "0"), ("--count", "101"), ("--bogus",)):
        usage = verify(daemon, *bad)
        assert usage.returncode == 2, bad
        assert len(usage.stderr.strip().splitlines()) <= 2 and "Traceback" not in usage.stderr
    with login(daemon, "dave", "hunter2") as dave:
        dave.bet("RED", 1)
    blocked = verify(daemon, "--reveal")
    assert blocked.returncode == 1 and "537" not in blocked.stdout
    assert "bets are open" in blocked.stderr and "Traceback" not in blocked.stderr


# --------------------------------------------------------------------------
# docs/PROTOCOL.md's verifier, nothing but hashlib and hmac, against a real daemon
# --------------------------------------------------------------------------


def protocol_snippet() -> str:
    text = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    [snippet] = re.findall(r"```python verify\n(.*?)```", text, re.S)
    return snippet


def test_the_protocol_docs_verifier_recomputes_a_real_daemons_spins(start_daemon):
    snippet = protocol_snippet()
    assert set(re.findall(r"^(?:import|from) (\w+)", snippet, re.M)) == {"hashlib", "hmac"}
    namespace: dict = {}
    exec(compile(snippet, "PROTOCOL.md", "exec"), namespace)
    daemon = start_daemon(users=True)
    with login(daemon) as guest:
        guest.fair_seed("my-own-words")
        committed = guest.fair()
        for wheel in ("american", "european", "american"):
            guest.table(wheel)
            for _ in range(15):
                guest.spin()
        history = guest.history(45)
        revealed = guest.fair_new()
    assert namespace["committed"](revealed.server_seed, committed.server_seed_hash)
    assert not namespace["committed"](revealed.server_seed, revealed.server_seed_hash)
    for entry in history.entries:
        seeds = entry.fair
        assert seeds.server_seed_hash == committed.server_seed_hash
        assert namespace["pocket"](revealed.server_seed, seeds.client_seed, seeds.nonce, seeds.wheel) == entry.pocket


# --------------------------------------------------------------------------
# The domain: Table.spin draws from its seeds and moves the nonce on
# --------------------------------------------------------------------------


def test_table_spin_uses_the_derivation_then_the_next_nonce():
    source = SeedDraw(5)
    table = Table(100)
    table.place(parse_bet("RED", "american"), 10)
    first = table.spin(source)
    seeds = table.seeds
    assert seeds is not None and seeds.nonce == 1
    expected = fair.derive_pocket(seeds.server_seed, fair.private_message(seeds.client_seed, 0), 38)
    assert first.pocket == expected
    assert first.fair == FairSpin("american", 0, seeds.client_seed, fair.seed_hash(seeds.server_seed))
    assert table.spin(source).fair.nonce == 1
    assert first.fair.recompute(seeds.server_seed) == first.pocket
    assert first.fair.recompute("0" * 64) is None  # not this spin's seed


def test_no_seed_changes_while_bets_are_open_and_a_refusal_changes_nothing():
    source = SeedDraw(5)
    table = Table(100)
    seeds = table.fair_seeds(source)
    table.place(parse_bet("RED", "american"), 10)
    with pytest.raises(BetsOpen):
        table.set_client_seed("mine", source)
    with pytest.raises(BetsOpen):
        table.new_server_seed(source)
    assert table.seeds == seeds
    table.clear()
    old, new = table.new_server_seed(source)
    assert old == seeds.server_seed and new.nonce == 0 and new.client_seed == seeds.client_seed


def test_the_server_seed_is_never_in_a_repr_and_survives_a_snapshot():
    table = Table(100)
    seeds = table.fair_seeds(SeedDraw(9))
    assert seeds.server_seed not in repr(seeds) and seeds.server_seed not in repr(table)
    copy = Table.from_snapshot(table.snapshot())
    assert copy.seeds == seeds
    for bad in (FairSeeds("A" * 64, "x"), FairSeeds("a" * 64, "two words"), FairSeeds("a" * 64, "x", -1)):
        with pytest.raises(ValueError):  # a table takes only seeds that are checked: lowercase hex, one word, 0 or more
            Table(100, seeds=bad)


@given(
    client_seed=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64),
    spins=st.integers(1, 5),
    wheel=st.sampled_from(["american", "european"]),
    seed=st.integers(0, 2**32),
)
def test_any_client_seed_a_player_may_choose_gives_the_documented_pockets(client_seed, spins, wheel, seed):
    source = SeedDraw(seed)
    table = Table(100, wheel_kind=wheel)
    server_seed = table.set_client_seed(client_seed, source).server_seed
    pockets = [table.spin(source).pocket for _ in range(spins)]
    size = 38 if wheel == "american" else 37
    assert pockets == [fair.derive_pocket(server_seed, f"{client_seed}:{nonce}", size) for nonce in range(spins)]
    assert table.seeds == (server_seed, client_seed, spins)
