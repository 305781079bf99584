"""The audit log in the database: its key file, the entries the store's writes append, verify, signed backups.

Every settled spin, cashier's credit, meter reading and user change appends an
entry (``lineproto.domain.auditchain``) in the same transaction as the change,
through :meth:`AuditLog.append`. The key lives in a file outside the database
(``--audit-key``, default ``<db>.audit-key``: 64 hex characters, mode 0600),
created at the first start. docs/AUDIT.md tells what it proves and what not.

Each entry's content is the change as a reviewer must see it, built from the
row's columns by one function per table (:func:`spin_content`, ...), so
``audit verify`` rebuilds it from the rows as they are now and names a row
edited, deleted or added outside the daemon.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import os
import pathlib
import secrets
import shutil
import sqlite3
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..domain import auditchain
from ..domain.accounts import User
from ..domain.auditchain import EMPTY, REKEY, Entry, Head, canonical, next_entry
from ..domain.meters import utc_now
from .base import StoreOpenError
from .locks import lock_key

#: The default key file is the database's path with this added.
KEY_SUFFIX = ".audit-key"
#: A backup's signature is its path with this added.
SIGNATURE_SUFFIX = ".sig"
SIGNATURE_MAGIC = "lineproto backup signature 1"
_HEAD_KEY = "audit_head"
#: The lock (``locks.lock_key``) an append holds until its transaction ends: one chain, whoever appends.
_LOG_LOCK = "audit log"

log = logging.getLogger("lineproto.store")

# -- the key file


def add_arguments(parser: argparse.ArgumentParser, default: object = None) -> None:
    """``--audit-key FILE``: on the daemon (``default`` None) and each admin subcommand (SUPPRESS)."""
    parser.add_argument(
        "--audit-key",
        metavar="FILE",
        default=default,
        help="the audit log's secret key (default: the database's path + '.audit-key'); "
        "created 0600 at the first start; keep it out of backups (docs/AUDIT.md)",
    )


def key_path(db: str, option: str | None) -> str | None:
    """The key file of ``db``: ``option``, or beside the database; None without an option for a database
    that is no file (in memory, or a PostgreSQL URL)."""
    if option:
        return option
    return None if db == ":memory:" or _is_url(db) else db + KEY_SUFFIX


def _is_url(db: str) -> bool:
    from . import is_postgres  # the package's one test of --db

    return is_postgres(db)


def read_key(path: str) -> bytes | None:
    """The key in ``path`` (64 hex characters), or None if there is no such file."""
    try:
        with open(path, encoding="ascii") as file:
            text = file.read().strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreOpenError(f"cannot read audit key {path}: {getattr(exc, 'strerror', None) or exc}") from None
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o077:
        log.warning("audit key %s is readable by other users (mode %04o): chmod 600 %s", path, mode, path)
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != auditchain.KEY_BYTES:
        raise StoreOpenError(f"audit key {path} is not {2 * auditchain.KEY_BYTES} hex characters")
    return key


def load_key(path: str | None) -> bytes:
    """The key of an existing log (verify, backup, restore): a missing file is an error."""
    if path is None:
        raise StoreOpenError("this database is no file, so no audit key file lies beside it: give --audit-key FILE")
    key = read_key(path)
    if key is None:
        raise StoreOpenError(f"no audit key at {path} (--audit-key FILE names another)")
    return key


def write_new_key(path: str) -> bytes:
    """32 bytes from :mod:`secrets` into a new file ``path`` (0600; its directory made 0700 if missing).

    The file appears whole or not at all (written aside, then linked into place), and when another
    process created it first (daemons started at once on a new database) its key is the one used.
    """
    directory = os.path.dirname(os.path.abspath(path))
    key = secrets.token_bytes(auditchain.KEY_BYTES)
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=0o700, exist_ok=True)
            os.chmod(directory, 0o700)
        aside = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.new"
        descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as file:
                file.write(key.hex() + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.link(aside, path)  # fails if the file exists: the first process's key stands
        except FileExistsError:
            theirs = read_key(path)
            if theirs is None:  # pragma: no cover - deleted again in between
                raise
            return theirs
        finally:
            os.unlink(aside)
    except OSError as exc:
        raise StoreOpenError(f"cannot create audit key {path}: {exc.strerror or exc}") from None
    return key


# -- what each entry holds: one function per table, used when writing and when verifying

SPIN_SELECT = "SELECT id, player, tbl, round, wheel, pocket, at, staked, returned, bankroll_after FROM spins"
_SPIN_FIELDS = ("spin", "player", "table", "round", "wheel", "pocket", "at", "staked", "returned", "bankroll_after")
SPIN_BETS_SELECT = "SELECT bet, amount, won, returned, slip FROM spin_bets WHERE spin = ? ORDER BY rowid"
CREDIT_SELECT = "SELECT id, player, at, admin, amount, reason, bankroll_after, after_spin FROM ledger"
_CREDIT_FIELDS = ("credit", "player", "at", "admin", "amount", "reason", "bankroll_after", "after_spin")
READING_SELECT = "SELECT id, meter, reading, reason, at, reader FROM submissions"
_READING_FIELDS = ("submission", "meter", "reading", "reason", "at", "reader")


def spin_content(row: tuple, bets: list[tuple]) -> dict:
    """A settled spin: the ``spins`` row (columns of :data:`SPIN_SELECT`) and its bets (``SPIN_BETS_SELECT``)."""
    content = dict(zip(_SPIN_FIELDS, row, strict=True))
    content["bets"] = [list(bet) for bet in bets]
    return content


def credit_content(row: tuple) -> dict:
    """A cashier's entry: the ``ledger`` row (columns of :data:`CREDIT_SELECT`)."""
    return dict(zip(_CREDIT_FIELDS, row, strict=True))


def reading_content(row: tuple) -> dict:
    """A meter reading: the ``submissions`` row (columns of :data:`READING_SELECT`)."""
    return dict(zip(_READING_FIELDS, row, strict=True))


def user_content(user: User) -> dict:
    """A user as added or changed; the password as a fingerprint of its hash (the log keeps no old hashes)."""
    fingerprint = hashlib.sha256(user.password_hash.encode()).hexdigest()[:32]
    return {"user": user.name, "real_name": user.real_name, "roles": sorted(user.roles), "password": fingerprint}


# -- the log


class AuditLog:
    """Appends entries under one key; every call runs inside the caller's transaction."""

    def __init__(self, key: bytes | None, clock: Callable = utc_now, missing: str = ""):
        """``key`` None: the key file is missing; the log then refuses every append with ``missing``."""
        self._key = key
        self._clock = clock
        self._missing = missing

    @classmethod
    def open(cls, connection: sqlite3.Connection, db: str, key_file: str | None, required: bool = False) -> AuditLog:
        """The log of a database just migrated, its key read or created; StoreOpenError if they do not match.

        A missing key is created while the log is empty. With entries in the
        log a missing key is refused: at once if ``required`` (the daemon, the
        subcommands that create), else at the first append, so a copy opens
        for reading without its key. ``daemon.py audit rekey --force`` starts a
        new key on purpose. An empty log gets its ``start`` entry: what existed
        before the log began (users, and the rows the log does not cover).
        """
        key = read_key(key_file) if key_file is not None else secrets.token_bytes(auditchain.KEY_BYTES)
        entries = connection.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        if key is None and entries:
            missing = (
                f"audit key {key_file} is missing but the audit log of {db} has {entries} entries: "
                "put the key file back (or --audit-key FILE), or start a new key with "
                "'daemon.py audit rekey --force' (recorded in the log)"
            )
            if required:
                raise StoreOpenError(missing)
            return cls(None, missing=missing)
        if key is None:
            key = write_new_key(key_file)  # type: ignore[arg-type]  # None only for :memory:, which has a key
        opened = cls(key)
        if entries:
            stored = stored_head(connection)
            if stored is not None and not hmac.compare_digest(stored[0].mac(key), stored[1]):
                raise StoreOpenError(
                    f"audit key {key_file} does not sign the audit log of {db} (another database's key?): "
                    "give the right --audit-key, or 'daemon.py audit rekey --force'"
                )
        else:
            connection.execute("BEGIN IMMEDIATE")
            try:
                lock_key(connection, _LOG_LOCK)
                # Another process may have begun the log while this one waited for the lock.
                if not connection.execute("SELECT count(*) FROM audit_log").fetchone()[0]:
                    opened.append(connection, "start", _baseline(connection))
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return opened

    def append(self, connection: sqlite3.Connection, kind: str, content: dict) -> Entry:
        """Add an entry of ``kind`` holding ``content`` (JSON-able) after the newest one, and move the head.

        The one call every write path makes (shared tables' settlements too),
        inside the transaction of the change it records.
        """
        if self._key is None:
            raise StoreOpenError(self._missing)
        lock_key(connection, _LOG_LOCK)  # daemons sharing a database append one after the other
        row = connection.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        previous = Head(row[0], row[1]) if row else EMPTY
        entry = next_entry(self._key, previous, self._clock().isoformat(), kind, canonical(content))
        connection.execute(
            "INSERT INTO audit_log (seq, at, kind, content, prev_hash, hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (entry.seq, entry.at, entry.kind, entry.content, entry.prev_hash, entry.hash, entry.mac),
        )
        head = entry.head.signed(self._key)
        if not connection.execute("UPDATE meta SET value = ? WHERE key = ?", (head, _HEAD_KEY)).rowcount:
            connection.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (_HEAD_KEY, head))
        return entry

    def user(self, connection: sqlite3.Connection, user: User) -> Entry:
        return self.append(connection, "user", user_content(user))

    def user_deleted(self, connection: sqlite3.Connection, name: str) -> Entry:
        return self.append(connection, "userdel", {"user": name})


def _baseline(connection: sqlite3.Connection) -> dict:
    """The ``start`` entry: the users and the highest row ids that existed before the log."""

    def highest(table: str) -> int:
        return int(connection.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0])

    users = connection.execute("SELECT name, real_name, roles, password_hash FROM users ORDER BY name").fetchall()
    return {
        "since": {"spins": highest("spins"), "ledger": highest("ledger"), "submissions": highest("submissions")},
        "users": [user_content(_user(row)) for row in users],
    }


def _user(row: tuple) -> User:
    name, real_name, roles, password_hash = row
    return User(name, real_name, frozenset(role for role in roles.split(",") if role), password_hash)


def stored_head(connection: sqlite3.Connection) -> tuple[Head, str] | None:
    """The head kept in ``meta`` and its mac, or None if there is none (or it is unreadable)."""
    row = connection.execute("SELECT value FROM meta WHERE key = ?", (_HEAD_KEY,)).fetchone()
    return parse_stored_head(row[0] if row else None)


def parse_stored_head(text: str | None) -> tuple[Head, str] | None:
    """meta's ``audit_head`` text as (head, mac); None if missing or unreadable."""
    if text is None:
        return None
    try:
        return auditchain.parse_head(text)
    except auditchain.BadHead:
        return None


# -- verify


@dataclass(frozen=True)
class Report:
    """``audit verify``'s outcome: the chain's verdict and the first table row that disagrees (None: all agree)."""

    verdict: auditchain.Verdict
    problem: str | None

    @property
    def intact(self) -> bool:
        return self.problem is None


def verify_database(connection: sqlite3.Connection, key: bytes) -> Report:
    """Walk the chain, then rebuild each recorded row's content from the tables and compare."""
    rekeyed = connection.execute("SELECT coalesce(max(seq), 0) FROM audit_log WHERE kind = ?", (REKEY,)).fetchone()[0]
    head = connection.execute("SELECT value FROM meta WHERE key = ?", (_HEAD_KEY,)).fetchone()
    verdict = auditchain.verify(_entries(connection), key, head[0] if head else None, rekeyed)
    if verdict.problem is not None:
        kind = connection.execute("SELECT kind FROM audit_log WHERE seq = ?", (verdict.problem.seq,)).fetchone()
        named = f"entry {verdict.problem.seq}" + (f" ({kind[0]})" if kind else "")
        return Report(verdict, f"{named}: {verdict.problem.reason}")
    return Report(verdict, _TableCheck(connection).run())


def _entries(connection: sqlite3.Connection) -> Iterator[Entry]:
    cursor = connection.execute("SELECT seq, at, kind, content, prev_hash, hash, mac FROM audit_log ORDER BY seq")
    for row in cursor:
        yield Entry(*row)


class _TableCheck:
    """The tables against the log: each recorded row as recorded, no row the log never saw, the users as logged."""

    _TABLES = {  # kind: (table, id field, select)
        "spin": ("spins", "spin", SPIN_SELECT),
        "credit": ("ledger", "credit", CREDIT_SELECT),
        "reading": ("submissions", "submission", READING_SELECT),
    }

    def __init__(self, connection: sqlite3.Connection):
        self.db = connection
        self.covered: dict[str, set[int]] = {table: set() for table, _, _ in self._TABLES.values()}
        self.since: dict[str, int] = {}
        self.users: dict[str, dict | None] = {}

    def run(self) -> str | None:
        for seq, kind, text in self.db.execute("SELECT seq, kind, content FROM audit_log ORDER BY seq"):
            problem = self._entry(kind, text)
            if problem is not None:
                return f"entry {seq} ({kind}): {problem}"
        return self._rows_not_logged() or self._users_as_logged()

    def _entry(self, kind: str, text: str) -> str | None:
        content = json.loads(text)
        if kind == "start":
            self.since = content["since"]
            self.users = {user["user"]: user for user in content["users"]}
        elif kind == "user":
            self.users[content["user"]] = content
        elif kind == "userdel":
            self.users[content["user"]] = None
        elif kind in self._TABLES:
            table, field, select = self._TABLES[kind]
            number = content[field]
            self.covered[table].add(number)
            row = self.db.execute(f"{select} WHERE id = ?", (number,)).fetchone()
            if row is None:
                return f"the {table} row {number} it records is missing (deleted)"
            now = canonical(self._content(kind, row))
            if now != text:  # the same rows give the same text: only a difference needs naming
                return _difference(table, number, content, json.loads(now))
        return None

    def _content(self, kind: str, row: tuple) -> dict:
        """What the entry of ``kind`` would hold for the row as it is now."""
        if kind == "spin":
            return spin_content(row, self.db.execute(SPIN_BETS_SELECT, (row[0],)).fetchall())
        return credit_content(row) if kind == "credit" else reading_content(row)

    def _rows_not_logged(self) -> str | None:
        for table, covered in self.covered.items():
            for (number,) in self.db.execute(
                f"SELECT id FROM {table} WHERE id > ? ORDER BY id", (self.since.get(table, 0),)
            ):
                if number not in covered:
                    return f"the {table} row {number} is not in the audit log (added outside the daemon)"
        return None

    def _users_as_logged(self) -> str | None:
        rows = self.db.execute("SELECT name, real_name, roles, password_hash FROM users ORDER BY name").fetchall()
        present = {row[0]: json.loads(canonical(user_content(_user(row)))) for row in rows}
        for name in sorted(set(present) | {name for name, user in self.users.items() if user is not None}):
            logged = self.users.get(name)
            if logged is None:
                return f"user {name} is not in the audit log (added outside the daemon)"
            if name not in present:
                return f"user {name} is missing (deleted outside the daemon)"
            difference = _difference("users", name, logged, present[name])
            if difference:
                return difference
        return None


def _difference(table: str, number: object, logged: dict, now: dict) -> str | None:
    for field in sorted(set(logged) | set(now)):
        if logged.get(field) != now.get(field):
            return (
                f"the {table} row {number} differs from the log: {field} is {now.get(field)!r}, "
                f"logged {logged.get(field)!r}"
            )
    return None


# -- rekey


def rekey(connection: sqlite3.Connection, key_file: str, reason: str) -> Entry:
    """A new key in ``key_file`` (an old file kept as ``FILE.old``) and a ``rekey`` entry signed with it.

    The entry records the head it follows, so the entries before it stay
    checkable by their hashes, anchored by this entry's HMAC.
    """
    if os.path.exists(key_file):
        os.replace(key_file, key_file + ".old")
    key = write_new_key(key_file)
    connection.execute("BEGIN IMMEDIATE")
    try:
        row = connection.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        previous = {"seq": row[0], "hash": row[1]} if row else {"seq": 0, "hash": auditchain.GENESIS}
        entry = AuditLog(key).append(connection, REKEY, {"follows": previous, "reason": reason})
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return entry


# -- signed backups


def sign_backup(path: str, key: bytes) -> str:
    """Write ``path``.sig: the HMAC-SHA256 of the copy's bytes and its audit head; return the signature's path."""
    reader = sqlite3.connect(path)
    try:
        found = stored_head(reader)
    finally:
        reader.close()
    return write_signature(path, key, found[0] if found else EMPTY)


def write_signature(path: str, key: bytes, head: Head) -> str:
    """``path``.sig for a copy whose audit head is ``head`` (a PostgreSQL export's head is read by its store)."""
    signature = path + SIGNATURE_SUFFIX
    with open(signature, "w", encoding="ascii") as file:
        file.write(f"{SIGNATURE_MAGIC}\nfile-hmac-sha256 {_file_mac(path, key)}\naudit-head {head.seq} {head.hash}\n")
    return signature


def check_backup(path: str, key: bytes) -> Head:
    """The audit head of a backup whose signature matches its bytes; ValueError (one line) if not."""
    signature = path + SIGNATURE_SUFFIX
    try:
        with open(signature, encoding="ascii") as file:
            lines = file.read().splitlines()
    except FileNotFoundError:
        raise ValueError(f"no signature {signature}: an unsigned copy is not restored") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {signature}: {getattr(exc, 'strerror', None) or exc}") from None
    fields = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
    if not lines or lines[0] != SIGNATURE_MAGIC or "file-hmac-sha256" not in fields or "audit-head" not in fields:
        raise ValueError(f"{signature} is not a lineproto backup signature")
    if not hmac.compare_digest(_file_mac(path, key).encode(), fields["file-hmac-sha256"].encode()):
        raise ValueError(f"{path} does not match its signature {signature} (changed since the backup, or another key)")
    seq, _, digest = fields["audit-head"].partition(" ")
    return Head(int(seq) if seq.isdigit() else 0, digest)


def _file_mac(path: str, key: bytes) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            mac.update(chunk)
    return mac.hexdigest()


# -- the daemon.py subcommands: audit verify|rekey, restore


def add_admin_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """``daemon.py audit`` and ``daemon.py restore`` (``add`` as in :func:`lineproto.commands.add_admin_commands`)."""
    audit = add("audit", "verify the tamper-evident audit log, or start a new key (docs/AUDIT.md)", run_audit)
    audit.add_argument("action", choices=("verify", "rekey"), help="verify: walk the chain; rekey: a new key")
    audit.add_argument("--force", action="store_true", help="rekey: yes, start a new key (stop the daemon first)")
    restore = add("restore", "restore a signed backup to --db, refused if its signature does not match", run_restore)
    restore.add_argument("file", help="a copy written by 'daemon.py backup' (FILE.sig beside it)")
    restore.add_argument("--force", action="store_true", help="replace an existing --db (stop the daemon first)")


def _existing_database(db: str) -> str:
    if db == ":memory:" or not os.path.exists(db):
        raise StoreOpenError(f"no database at {db}")
    return db


def run_audit(args: argparse.Namespace, open_store: Callable) -> int:
    if _is_url(args.db):
        return _verify_postgres(args)
    db = _existing_database(args.db)
    path = key_path(db, args.audit_key)
    if args.action == "rekey":
        return _run_rekey(db, path, args.force)  # type: ignore[arg-type]  # a file database has a key path
    key = load_key(path)
    connection = sqlite3.connect(f"{pathlib.Path(db).resolve().as_uri()}?mode=ro", uri=True)
    try:
        if not connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_log'").fetchone():
            print(f"audit verify: {db} has no audit log yet (start the daemon on it once)", file=sys.stderr)
            return 1
        connection.execute("BEGIN")  # one snapshot for the chain and the tables
        report = verify_database(connection, key)
    finally:
        connection.close()
    return _print_report(db, report)


def _verify_postgres(args: argparse.Namespace) -> int:
    """``audit verify`` of a PostgreSQL database: the same walk, in one read-only snapshot."""
    from .postgres import Connector, PgConnection, first_line, psycopg, shown

    if args.action == "rekey":
        raise StoreOpenError("audit rekey: SQLite databases only so far (docs/DEPLOYING.md, PostgreSQL)")
    key = load_key(key_path(args.db, args.audit_key))
    try:
        raw = Connector(args.db).connect()
    except psycopg.Error as exc:
        raise StoreOpenError(f"cannot open database {shown(args.db)}: {first_line(exc)}") from None
    try:
        if raw.execute("SELECT to_regclass('audit_log')").fetchone()[0] is None:
            print(f"audit verify: {shown(args.db)} has no audit log yet (start the daemon on it once)", file=sys.stderr)
            return 1
        raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")  # one snapshot for the chain and the tables
        report = verify_database(PgConnection(raw), key)  # type: ignore[arg-type]  # the adapter runs this SQL
    finally:
        raw.close()
    return _print_report(shown(args.db), report)


def _print_report(db: str, report: Report) -> int:
    if not report.intact:
        print(f"audit verify: {db}: {report.problem}", file=sys.stderr)
        return 1
    verdict = report.verdict
    line = f"audit log of {db} intact: {verdict.entries} entries, last {verdict.last.seq} sha256 {verdict.last.hash}"
    if verdict.rekeyed_at > 1:
        line += f"; entries before {verdict.rekeyed_at} (a rekey) checked by hash only"
    print(line + "; the tables agree")
    return 0


def _run_rekey(db: str, path: str, force: bool) -> int:
    if not force:
        raise StoreOpenError(
            "audit rekey writes a new key: entries before it can then be checked by hash only; "
            "stop the daemon and add --force"
        )
    from .schema import migrate  # the log's table may not exist yet

    connection = sqlite3.connect(db, isolation_level=None)
    try:
        migrate(connection, db)
        entry = rekey(connection, path, "daemon.py audit rekey --force")
    finally:
        connection.close()
    print(f"new audit key in {path}; entry {entry.seq} (rekey) follows entry {entry.seq - 1}")
    return 0


def run_restore(args: argparse.Namespace, open_store: Callable) -> int:
    """Check FILE's signature with the key, then copy it to --db (which must not exist, unless --force)."""
    target = args.db
    if target == ":memory:":
        raise StoreOpenError("restore: --db must name a file")
    if not os.path.exists(args.file):  # the copy first: a missing key is the lesser news then
        raise StoreOpenError(f"restore: no file {args.file}")
    key = load_key(key_path(target, args.audit_key))
    try:
        head = check_backup(args.file, key)
    except ValueError as exc:
        print(f"restore: {exc}", file=sys.stderr)
        return 1
    if _is_url(target):
        from .postgres import restore, shown

        rows = restore(target, args.file, args.force)
        print(f"restored {args.file} to {shown(target)}: {rows} rows (signature good; audit log head {head.seq})")
        return 0
    if any(os.path.exists(target + suffix) for suffix in ("", "-wal")) and not args.force:
        raise StoreOpenError(f"restore: {target} exists (stop the daemon; --force replaces it)")
    directory = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(directory):
        raise StoreOpenError(f"restore: directory {directory} does not exist")
    temporary = f"{target}.restore{os.getpid()}"
    shutil.copyfile(args.file, temporary)
    with open(temporary, "rb") as file:
        os.fsync(file.fileno())
    for suffix in ("-wal", "-shm"):  # another database's WAL must never be applied to this one
        if os.path.exists(target + suffix):
            os.remove(target + suffix)
    os.replace(temporary, target)
    print(f"restored {args.file} to {target} (signature good; audit log head {head.seq})")
    return 0
