"""The audit log end to end: what the daemon records, --audit-key, ``audit verify`` against tampering, signed backups.

Tampering is done the way an intruder with the database file would: the
``sqlite3`` module on a copy, then ``daemon.py audit verify`` on that copy.
"""

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys

import pytest

from conftest import ROOT, TEST_USERS, Daemon, RawConnection, write_users_file
from lineproto.domain import auditchain
from lineproto.domain.accounts import User
from lineproto.domain.roulette import Limits
from lineproto.store import SqliteStore
from lineproto.store.audit import KEY_SUFFIX


def daemon_py(*args, stdin=""):
    return subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def login(connection, name):
    assert connection.reply().code == 220
    assert connection.command(f"USER {name}").code == 331
    assert connection.command(f"PASS {TEST_USERS[name][2]}").code == 230
    return connection


def play(port):
    """Two settled spins and a credit for dave, one reading by carol."""
    with RawConnection(port) as dave:
        login(dave, "dave")
        for line in ("BET RED 10", "BET 17 5", "SPIN", "BET BLACK 20", "SPIN"):
            assert dave.command(line).code in (200, 250), line
    with RawConnection(port) as root:
        login(root, "root")
        assert root.command("CRED dave 50 a bonus").code == 200
        assert root.command("CRED dave -100000 too much").code >= 400  # refused: no entry
    with RawConnection(port) as carol:
        login(carol, "carol")
        meter = carol.command("JOB").lines[0].split()[0]
        assert carol.command(f"READ {meter} 5983").code == 250


def entries(db):
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT seq, kind, content FROM audit_log ORDER BY seq").fetchall()


def verify(db, *args):
    return daemon_py("audit", "verify", "--db", str(db), *args)


def tamper(db, *statements):
    connection = sqlite3.connect(db)
    for statement in statements:
        connection.execute(statement)
    connection.commit()
    connection.close()


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    """A database the daemon wrote (users, spins, a credit, a reading), the daemon stopped."""
    path = tmp_path_factory.mktemp("played")
    db = path / "played.db"
    daemon = Daemon(path, "--db", str(db), "--users", str(write_users_file(path / "users.txt")))
    play(daemon.port)
    assert daemon.stop() == 0
    return db


@pytest.fixture
def copy(played, tmp_path):
    """A copy of the played database with its key beside it, to tamper with."""
    target = tmp_path / "copy.db"
    shutil.copyfile(played, target)
    shutil.copyfile(f"{played}{KEY_SUFFIX}", f"{target}{KEY_SUFFIX}")
    for path in (target, f"{target}{KEY_SUFFIX}"):
        os.chmod(path, 0o600)  # as private as the daemon's (else every command warns about it)
    return target


def write_key(path, text):
    """A key file of our own, as private as the daemon makes its own."""
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def seq_of(db, kind, index=0):
    return [seq for seq, entry_kind, _ in entries(db) if entry_kind == kind][index]


# --------------------------------------------------------------------------- what is recorded


def test_the_daemon_records_every_settled_spin_credit_reading_and_user(tmp_path, start_daemon):
    """Through the socket, on both engines: each change appends its entry; a refused CRED appends none."""
    db = tmp_path / "live.db"
    daemon = start_daemon("--db", str(db), users=True)
    play(daemon.port)
    kinds = [kind for _, kind, _ in entries(db)]
    assert kinds[0] == "start"
    assert kinds.count("user") == len(TEST_USERS)
    assert kinds.count("spin") == 2 and kinds.count("credit") == 1 and kinds.count("reading") == 1
    spin = json.loads(next(content for _, kind, content in entries(db) if kind == "spin"))
    assert (
        spin["player"] == "dave"
        and spin["staked"] == 15
        and [bet[:2] for bet in spin["bets"]]
        == [
            ["RED", 10],
            ["17", 5],
        ]
    )
    credit = json.loads(next(content for _, kind, content in entries(db) if kind == "credit"))
    assert (credit["player"], credit["admin"], credit["amount"], credit["reason"]) == ("dave", "root", 50, "a bonus")
    # an admin subcommand appends to the same chain while the daemon runs, and the daemon goes on after it
    added = daemon_py("useradd", "erin", "--name", "Erin", "--password-stdin", "--db", str(db), stdin="p\n")
    assert added.returncode == 0, added.stderr
    with RawConnection(daemon.port) as dave:
        login(dave, "dave")
        assert dave.command("BET RED 10").code == 200 and dave.command("SPIN").code == 250
    kinds = [kind for _, kind, _ in entries(db)]
    assert kinds[-2:] == ["user", "spin"]
    result = verify(db)  # while the daemon runs
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"audit log of {db} intact: {len(kinds)} entries, last {len(kinds)} sha256 ")


def test_user_changes_are_recorded_once_with_a_password_fingerprint_not_the_hash(tmp_path):
    store = SqliteStore(str(tmp_path / "u.db"))
    store.put_user(User("erin", "Erin", frozenset({"reader"}), "scrypt$first"))
    store.put_user(User("erin", "Erin", frozenset({"reader", "player"}), "scrypt$second"))
    store.put_user(User("erin", "Erin", frozenset({"player", "reader"}), "scrypt$second"))  # unchanged: no entry
    assert store.delete_user("erin") and not store.delete_user("erin")
    store.close()
    recorded = [(kind, json.loads(content)) for _, kind, content in entries(tmp_path / "u.db")][1:]
    assert [kind for kind, _ in recorded] == ["user", "user", "userdel"]
    assert recorded[1][1]["roles"] == ["player", "reader"]
    assert recorded[0][1]["password"] != recorded[1][1]["password"]
    assert "scrypt" not in json.dumps(recorded)


def test_a_change_and_its_entry_share_one_transaction(tmp_path):
    """A change the domain refuses (below zero) leaves no entry; an accepted one is recorded before it returns."""
    store = SqliteStore(str(tmp_path / "t.db"))
    before = len(entries(tmp_path / "t.db"))
    with pytest.raises(Exception, match="below"):
        store.credit("dave", "root", -5000, "too much", 100, Limits())
    assert len(entries(tmp_path / "t.db")) == before
    store.credit("dave", "root", 5, "a tip", 100, Limits())
    assert entries(tmp_path / "t.db")[-1][1] == "credit"
    store.close()


# --------------------------------------------------------------------------- the key


def test_the_key_is_created_private_and_kept_out_of_the_database_the_log_and_backups(tmp_path, start_daemon):
    db = tmp_path / "new" / "k.db"
    key_file = tmp_path / "keys" / "audit.key"
    daemon = start_daemon("--db", str(db), "--audit-key", str(key_file), users=True)
    key = key_file.read_text().strip()
    assert len(bytes.fromhex(key)) == 32
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(key_file.parent).st_mode) == 0o700
    assert not os.path.exists(f"{db}{KEY_SUFFIX}")  # --audit-key, not the default beside the database
    result = daemon_py("backup", str(tmp_path / "b.db"), "--db", str(db), "--audit-key", str(key_file))
    assert result.returncode == 0, result.stderr
    daemon.stop()
    for path in (db, tmp_path / "b.db", tmp_path / "b.db.sig", daemon.stderr_path):
        data = path.read_bytes()
        assert key.encode() not in data and bytes.fromhex(key) not in data, path
    assert key not in result.stdout + result.stderr


def test_a_key_others_may_read_is_named_in_a_warning(copy):
    os.chmod(f"{copy}{KEY_SUFFIX}", 0o644)
    result = daemon_py("users", "--db", str(copy))
    assert result.returncode == 0
    assert f"{copy}{KEY_SUFFIX} is readable by other users (mode 0644)" in result.stderr


def test_a_missing_key_refuses_the_daemon_and_changes_but_not_reading(copy):
    os.remove(f"{copy}{KEY_SUFFIX}")
    start = daemon_py("--db", str(copy), "--port", "0")
    assert start.returncode == 2
    assert start.stderr.count("\n") == 1 and "audit key" in start.stderr and "audit rekey --force" in start.stderr
    change = daemon_py("usermod", "carol", "--add-role", "player", "--db", str(copy))
    assert change.returncode == 2 and change.stderr.count("\n") == 1 and "audit key" in change.stderr
    listing = daemon_py("users", "--db", str(copy))
    assert listing.returncode == 0 and "carol" in listing.stdout
    assert not os.path.exists(f"{copy}{KEY_SUFFIX}")  # nothing created behind the operator's back


def test_another_key_refuses_the_daemon(copy, tmp_path):
    other = write_key(tmp_path / "other.key", "ab" * 32 + "\n")
    start = daemon_py("--db", str(copy), "--port", "0", "--audit-key", str(other))
    assert start.returncode == 2 and start.stderr.count("\n") == 1 and "does not sign" in start.stderr


def test_rekey_needs_force_then_starts_a_new_key_the_log_records(copy, tmp_path):
    os.remove(f"{copy}{KEY_SUFFIX}")
    refused = daemon_py("audit", "rekey", "--db", str(copy))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--force" in refused.stderr
    count = len(entries(copy))
    done = daemon_py("audit", "rekey", "--force", "--db", str(copy))
    assert done.returncode == 0, done.stderr
    assert entries(copy)[-1][:2] == (count + 1, "rekey")
    assert json.loads(entries(copy)[-1][2])["follows"]["seq"] == count
    result = verify(copy)
    assert result.returncode == 0, result.stderr
    assert f"entries before {count + 1} (a rekey) checked by hash only" in result.stdout
    daemon = Daemon(tmp_path, "--db", str(copy))  # the daemon starts again with the new key
    daemon.stop()
    tamper(copy, "UPDATE audit_log SET content = replace(content, 'a bonus', 'a gift') WHERE kind = 'credit'")
    assert "content edited" in verify(copy).stderr  # the old entries are still held by their hashes


def test_audit_verify_without_the_key_or_the_database_is_one_line(copy, tmp_path):
    os.remove(f"{copy}{KEY_SUFFIX}")
    for result in (verify(copy), verify(tmp_path / "none.db")):
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr


# --------------------------------------------------------------------------- audit verify against tampering


def test_an_untouched_copy_verifies(copy):
    result = verify(copy)
    assert result.returncode == 0 and "intact" in result.stdout and "the tables agree" in result.stdout


def failure(db):
    result = verify(db)
    assert result.returncode == 1, result.stdout
    assert result.stderr.count("\n") == 1
    return result.stderr.strip().split(": ", 2)[-1]


def test_an_edited_entry_is_named(copy):
    seq = seq_of(copy, "credit")
    tamper(copy, f"UPDATE audit_log SET content = replace(content, '50', '500') WHERE seq = {seq}")
    assert failure(copy) == f"entry {seq} (credit): content edited (its hash does not match its fields)"


def test_an_edited_entry_with_its_hash_recomputed_is_named_by_its_hmac(copy):
    seq = seq_of(copy, "credit")
    with sqlite3.connect(copy) as connection:
        row = connection.execute(
            "SELECT seq, at, kind, content, prev_hash, hash, mac FROM audit_log WHERE seq = ?", (seq,)
        )
        entry = auditchain.Entry(*row.fetchone())
    forged = auditchain.next_entry(bytes(32), auditchain.Head(seq - 1, entry.prev_hash), entry.at, entry.kind, "{}")
    tamper(
        copy, f"UPDATE audit_log SET content = '{{}}', hash = '{forged.hash}', mac = '{forged.mac}' WHERE seq = {seq}"
    )
    assert failure(copy).startswith(f"entry {seq} (credit): bad HMAC")


def test_a_deleted_entry_is_named(copy):
    seq = seq_of(copy, "spin")
    tamper(copy, f"DELETE FROM audit_log WHERE seq = {seq}")
    assert failure(copy) == f"entry {seq}: missing (deleted)"


def test_an_inserted_entry_is_named(copy):
    """An entry slipped in the middle (the rest renumbered), made without the key."""
    seq = seq_of(copy, "credit")
    with sqlite3.connect(copy) as connection:
        before = connection.execute("SELECT seq, hash FROM audit_log WHERE seq = ?", (seq - 1,)).fetchone()
    forged = auditchain.next_entry(bytes(32), auditchain.Head(*before), "2026-12-02T00:00:00+00:00", "credit", "{}")
    tamper(
        copy,
        f"UPDATE audit_log SET seq = -seq WHERE seq >= {seq}",
        "UPDATE audit_log SET seq = 1 - seq WHERE seq < 0",
        "INSERT INTO audit_log (seq, at, kind, content, prev_hash, hash, mac) VALUES "
        f"({seq}, '{forged.at}', 'credit', '{{}}', '{forged.prev_hash}', '{forged.hash}', '{forged.mac}')",
    )
    assert failure(copy).startswith(f"entry {seq} (credit): bad HMAC")


def test_an_entry_appended_after_the_head_is_named(copy):
    last = entries(copy)[-1][0]
    with sqlite3.connect(copy) as connection:
        head = auditchain.Head(*connection.execute("SELECT seq, hash FROM audit_log WHERE seq = ?", (last,)).fetchone())
    forged = auditchain.next_entry(bytes(32), head, "2026-12-02T00:00:00+00:00", "credit", "{}")
    tamper(
        copy,
        "INSERT INTO audit_log (seq, at, kind, content, prev_hash, hash, mac) VALUES "
        f"({forged.seq}, '{forged.at}', 'credit', '{{}}', '{forged.prev_hash}', '{forged.hash}', '{forged.mac}')",
    )
    assert failure(copy).startswith(f"entry {last + 1} (credit): bad HMAC")


def test_reordered_entries_are_named(copy):
    seq = seq_of(copy, "spin")
    tamper(
        copy,
        f"UPDATE audit_log SET seq = -1 WHERE seq = {seq}",
        f"UPDATE audit_log SET seq = {seq} WHERE seq = {seq + 1}",
        f"UPDATE audit_log SET seq = {seq + 1} WHERE seq = -1",
    )
    assert failure(copy) == f"entry {seq} (spin): reordered: swapped with entry {seq + 1}"


def test_a_truncated_tail_is_named_by_the_head(copy):
    last = entries(copy)[-1][0]
    tamper(copy, f"DELETE FROM audit_log WHERE seq > {last - 2}")
    assert failure(copy) == f"entry {last - 1}: missing: the log ends at {last - 2} but its head is {last}"


def test_a_rewound_head_without_the_key_is_named(copy):
    last = entries(copy)[-1][0]
    tamper(
        copy,
        f"DELETE FROM audit_log WHERE seq = {last}",
        f"UPDATE meta SET value = (SELECT seq || ' ' || hash || ' ' || mac FROM audit_log WHERE seq = {last - 1}) "
        "WHERE key = 'audit_head'",
    )
    assert "the stored head has a bad HMAC" in failure(copy)


def test_another_key_fails_at_the_first_entry(copy, tmp_path):
    other = write_key(tmp_path / "other.key", "cd" * 32)
    result = verify(copy, "--audit-key", str(other))
    assert result.returncode == 1 and "entry 1 (start): bad HMAC" in result.stderr


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (  # another pocket than the one spun, whichever it was
            "UPDATE spins SET pocket = CASE pocket WHEN '36' THEN '35' ELSE '36' END WHERE id = 1",
            "the spins row 1 differs from the log: pocket is '3",
        ),
        ("UPDATE spin_bets SET returned = 999 WHERE spin = 1", "the spins row 1 differs from the log: bets is"),
        (
            "UPDATE ledger SET amount = 500 WHERE id = 1",
            "the ledger row 1 differs from the log: amount is 500, logged 50",
        ),
        ("DELETE FROM submissions", "the submissions row 1 it records is missing (deleted)"),
        (
            "INSERT INTO ledger (player, at, admin, amount, reason, bankroll_after, after_spin) "
            "VALUES ('dave', '2026-12-02T00:00:00+00:00', 'root', 1000, 'forged', 2000, 2)",
            "the ledger row 2 is not in the audit log (added outside the daemon)",
        ),
        ("UPDATE users SET roles = 'admin' WHERE name = 'carol'", "the users row carol differs from the log: roles"),
        ("DELETE FROM users WHERE name = 'dave'", "user dave is missing (deleted outside the daemon)"),
    ],
)
def test_a_row_changed_behind_the_log_is_named(copy, statement, expected):
    tamper(copy, statement)
    assert expected in failure(copy)


# --------------------------------------------------------------------------- signed backups, restore


def backup(db, target):
    result = daemon_py("backup", str(target), "--db", str(db))
    assert result.returncode == 0, result.stderr
    return result


def restore(backup_file, target, *args, key=None):
    return daemon_py(
        "restore", str(backup_file), "--db", str(target), *args, *(("--audit-key", str(key)) if key else ())
    )


def test_a_signed_backup_restores_and_verifies(copy, tmp_path):
    assert "signed in" in backup(copy, tmp_path / "b.db").stdout
    signature = (tmp_path / "b.db.sig").read_text().splitlines()
    last = entries(copy)[-1][0]
    assert signature[0] == "lineproto backup signature 1" and signature[2].startswith(f"audit-head {last} ")
    target = tmp_path / "restored" / "r.db"
    target.parent.mkdir()
    result = restore(tmp_path / "b.db", target, key=f"{copy}{KEY_SUFFIX}")
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == (tmp_path / "b.db").read_bytes()
    checked = verify(target, "--audit-key", f"{copy}{KEY_SUFFIX}")
    assert checked.returncode == 0 and f"{last} entries" in checked.stdout
    assert "dave" in daemon_py("users", "--db", str(target)).stdout


def test_a_flipped_byte_is_refused(copy, tmp_path):
    backup(copy, tmp_path / "b.db")
    data = bytearray((tmp_path / "b.db").read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "b.db").write_bytes(bytes(data))
    result = restore(tmp_path / "b.db", tmp_path / "r.db", key=f"{copy}{KEY_SUFFIX}")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "does not match its signature" in result.stderr
    assert not (tmp_path / "r.db").exists()


def test_a_copy_without_signature_or_under_another_key_is_refused(copy, tmp_path):
    backup(copy, tmp_path / "b.db")
    other = write_key(tmp_path / "other.key", "ef" * 32)
    refused = restore(tmp_path / "b.db", tmp_path / "r.db", key=other)
    assert refused.returncode == 1 and "does not match its signature" in refused.stderr
    os.remove(tmp_path / "b.db.sig")
    unsigned = restore(tmp_path / "b.db", tmp_path / "r.db", key=f"{copy}{KEY_SUFFIX}")
    assert unsigned.returncode == 1 and unsigned.stderr.count("\n") == 1 and "no signature" in unsigned.stderr


def test_restore_over_an_existing_database_needs_force(copy, tmp_path):
    backup(copy, tmp_path / "b.db")
    tamper(copy, "UPDATE users SET real_name = 'changed later'")
    refused = restore(tmp_path / "b.db", copy)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--force" in refused.stderr
    done = restore(tmp_path / "b.db", copy, "--force")
    assert done.returncode == 0, done.stderr
    assert verify(copy).returncode == 0


def test_restoring_a_copy_that_is_not_there_names_the_copy(tmp_path):
    """Not the missing key of a database that does not exist yet: the copy is what is missing."""
    done = daemon_py("restore", str(tmp_path / "nope.db"), "--db", str(tmp_path / "target.db"))
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        f"daemon.py: restore: no file {tmp_path / 'nope.db'}"
    ]
