"""Provably fair shared tables through the real socket, on both engines: a seated player checks every round.

The player's check uses nothing but hashlib and hmac (the rule of docs/PROTOCOL.md section 12), not
lineproto's own derivation: the seed hash comes before any bet (JOIN's reply for the round open when
they sit down, the 610 event for each round after), the seed with the result (630).
"""

import re
import time

from test_tables import Player

from conftest import ROOT, Daemon

ROUND = "0.4"  # --round-seconds: short; every wait below is for an event
ROUNDS = 5
HASH = re.compile(r"; server-seed-hash ([0-9a-f]{64})$")
OPEN = re.compile(r"round (\d+) open: bets for [0-9.]+ s; server-seed-hash ([0-9a-f]{64})")
RESULT = re.compile(r"round (\d+) (\S+) .*; seed ([0-9a-f]{64})")
JOINED = re.compile(r"Joined main: .*; round (\d+), .*; server-seed-hash ([0-9a-f]{64})")


def protocol_snippet() -> dict:
    """docs/PROTOCOL.md section 12's verifier, run: its ``committed`` and ``round_pocket`` (and its example seed)."""
    text = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    [snippet] = re.findall(r"```python verify-shared\n(.*?)```", text, re.S)
    assert set(re.findall(r"^(?:import|from) (\w+)", snippet, re.M)) == {"hashlib", "hmac"}
    namespace: dict = {}
    exec(compile(snippet, "PROTOCOL.md", "exec"), namespace)
    return namespace


def watch_rounds(player: Player, count: int, timeout: float = 30.0) -> tuple[dict[int, str], list[tuple]]:
    """Sit at main and read until ``count`` results: (each round's published hash, [(round, pocket, seed)])."""
    reply = player.command("JOIN main")
    joined = JOINED.fullmatch(reply.lines[-1])
    assert reply.code == 200 and joined, reply
    hashes = {int(joined.group(1)): joined.group(2)}
    results: list[tuple] = []
    deadline = time.monotonic() + timeout
    while len(results) < count:
        for event in player.parser.take_events():
            if event.code == 610:
                opened = OPEN.fullmatch(event.text)
                assert opened, event
                hashes[int(opened.group(1))] = opened.group(2)
            elif event.code == 630:
                result = RESULT.fullmatch(event.text)
                assert result, event
                assert int(result.group(1)) in hashes, (event, hashes)  # committed before the result
                results.append((int(result.group(1)), result.group(2), result.group(3)))
        if len(results) >= count:
            break
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{len(results)} of {count} results within {timeout} s"
        player.sock.settimeout(remaining)
        data = player.sock.recv(65536)
        assert data, "closed by server"
        player.ready.extend(player.parser.feed(data))
    player.sock.settimeout(10.0)
    return hashes, results[:count]


def test_a_seated_player_recomputes_every_rounds_pocket_from_the_published_hash_and_the_revealed_seed(
    start_daemon,
):
    daemon = start_daemon("--round-seconds", ROUND, "--tables", "main:american")
    with Player(daemon.port) as player:
        hashes, results = watch_rounds(player, ROUNDS)
        # a bet in a round: its result line still ends with the seed
        for _ in range(10):  # a busy machine may miss a short round's betting: then the next one
            round_id = int(player.event(610).text.split()[1])
            reply = player.command("BET RED 10")
            if reply.code == 200:
                break
            assert reply.code == 450, reply
        assert reply.code == 200, reply
        while True:
            event = player.event(630)
            if event.text.startswith(f"round {round_id} "):
                break
        assert re.search(r"; net [+-]\d+ \(staked 10, returned \d+\); seed [0-9a-f]{64}$", event.text), event
    seeds = {seed for _, _, seed in results}
    assert len(seeds) == ROUNDS  # a new seed every round
    verifier = protocol_snippet()
    for round_id, pocket, seed in results:
        assert verifier["committed"](seed, hashes[round_id])
        assert verifier["round_pocket"](seed, "main", round_id, "american") == pocket


def test_the_list_shows_the_current_rounds_seed_hash(start_daemon):
    daemon = start_daemon("--round-seconds", "3600", "--tables", "main:american,euro:european")
    with Player(daemon.port) as player:
        reply = player.command("JOIN euro")
        committed = HASH.search(reply.lines[-1])
        assert committed, reply
        listing = player.command("LIST").lines
    (euro,) = [line for line in listing if line.startswith("euro:")]
    (main,) = [line for line in listing if line.startswith("main:")]
    assert euro.endswith(f", server-seed-hash {committed.group(1)}"), listing
    assert "server-seed-hash" not in main  # idle: no round, no seed yet


def test_with_seed_the_rounds_seeds_and_pockets_are_the_same_on_every_run(tmp_path, engine):
    """Two daemons with --seed 7: the same rounds; round 1 is the one docs/PROTOCOL.md's example shows."""

    def run() -> list[tuple]:
        daemon = Daemon(tmp_path, "--seed", "7", "--round-seconds", ROUND, "--tables", "main:american", engine=engine)
        try:
            with Player(daemon.port) as player:
                return watch_rounds(player, 3)[1]
        finally:
            daemon.stop()

    first = run()
    assert [round_id for round_id, _, _ in first] == [1, 2, 3]
    assert first[0] == (1, "16", protocol_snippet()["seed"])
    assert run() == first
