#!/usr/bin/env python3
"""The seeds' meter service over stdlib XML-RPC, made durable in SQLite: S7's baseline.

login(username, password) -> [session, real name]; get_job(session) -> a new unique meter id
(`G` + 5 digits or `E` + 5-6 digits), reserved by inserting it (as the seeds insert it with no
reading); submit_reading(session, meter, when, reading, reason) -> True, with the reading
committed before the reply; get_status(session) -> [mine, all].

For a fair comparison with the daemon's store it uses the same SQLite settings (WAL,
synchronous=FULL unless --sync normal) and commits every change before it answers, one
transaction per call (the seeds' way: no batching). A ThreadingMixIn server with HTTP/1.1
keep-alive, so 50 client threads are served at once over persistent connections: a stronger
baseline than the seeds' single-threaded HTTP/1.0 server.
"""

import datetime
import hashlib
import hmac
import os
import random
import secrets
import socketserver
import sqlite3
import threading
import xmlrpc.client
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

from common import BACKLOG, parse_args, serve_sync


class Error(Exception):
    pass


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, 100_000)


class Manager:
    def __init__(self, path: str, sync: str, users: dict[str, tuple[str, str]]):
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = WAL").fetchone()
        self._db.execute(f"PRAGMA synchronous = {sync.upper()}")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS readings (meter TEXT PRIMARY KEY, reading INTEGER, "
            "taken TEXT, reason TEXT, username TEXT)"
        )
        self._lock = threading.Lock()
        self._sessions: dict[str, str] = {}
        self._users = {}
        for name, (password, real_name) in users.items():
            salt = os.urandom(16)
            self._users[name] = (salt, _hash(password, salt), real_name)
        self._dummy = (os.urandom(16), b"", "")

    def login(self, username, password):
        salt, expected, real_name = self._users.get(username, self._dummy)
        if not (hmac.compare_digest(_hash(password, salt), expected) and expected):
            raise Error("Invalid username or password")
        session = secrets.token_hex(16)
        with self._lock:
            self._sessions[session] = username
        return session, real_name

    def _username(self, session):
        with self._lock:
            try:
                return self._sessions[session]
            except KeyError:
                raise Error("Invalid session ID") from None

    def get_job(self, session):
        self._username(session)
        while True:
            kind = random.choice("GE")
            meter = f"{kind}{random.randint(40000, 99999 if kind == 'G' else 999999)}"
            with self._lock:
                cursor = self._db.execute("INSERT OR IGNORE INTO readings (meter) VALUES (?)", (meter,))
                if cursor.rowcount == 1:
                    return meter

    def submit_reading(self, session, meter, when, reading, reason=""):
        if isinstance(when, xmlrpc.client.DateTime):
            when = datetime.datetime.strptime(when.value, "%Y%m%dT%H:%M:%S")
        if (not isinstance(reading, int) or reading < 0) and not reason:
            raise Error("Invalid reading")
        username = self._username(session)
        with self._lock:
            cursor = self._db.execute(
                "UPDATE readings SET reading = ?, taken = ?, reason = ?, username = ? WHERE meter = ?",
                (reading, when.isoformat(), reason, username, meter),
            )
            if cursor.rowcount != 1:
                raise Error("Invalid meter ID")
        return True

    def get_status(self, session):
        username = self._username(session)
        with self._lock:
            total, mine = self._db.execute(
                "SELECT count(*), coalesce(sum(username = ?), 0) FROM readings WHERE reading IS NOT NULL", (username,)
            ).fetchone()
        return mine, total


class Handler(SimpleXMLRPCRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: xmlrpc.client reuses its connection

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = BACKLOG


def main():
    def extra(parser):
        parser.add_argument("--db", required=True, help="SQLite file")
        parser.add_argument("--sync", choices=("full", "normal"), default="full")
        parser.add_argument(
            "--user", action="append", default=[], metavar="NAME:PASSWORD", help="a reader (repeatable)"
        )

    args = parse_args(__doc__, extra)
    users = {}
    for item in args.user:
        name, _, password = item.partition(":")
        users[name] = (password, name.title())
    manager = Manager(args.db, args.sync, users)
    server = Server((args.host, args.port), Handler, allow_none=False, logRequests=False)
    server.register_instance(manager)
    serve_sync(server, args.notify)


if __name__ == "__main__":
    main()
