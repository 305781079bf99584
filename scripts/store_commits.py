"""Group commit, measured: store operations per second, COMMITs per second and operations per COMMIT.

    python3 scripts/store_commits.py [--threads 32] [--seconds 5] [--stores 1]

Threads (standing for sessions) each place bets for a player of their own through one store's
``update_table`` for ``--seconds``; with ``--stores 2`` two stores on one PostgreSQL database
stand for two daemons; with ``--shared`` every player is served by both (their row locks meet, so
batches may deadlock and be run again: the retries are counted), else each by one. The store's
writer counts its COMMITs and the operations in them (``Writer.commits``, ``Writer.operations``).
SQLite (a temporary file, synchronous=FULL) runs the same load for comparison, with one store.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from lineproto.domain.roulette import InsufficientChips, Limits, parse_bet  # noqa: E402
from lineproto.store import open_store  # noqa: E402

RED = parse_bet("RED", "american")
LIMITS = Limits()


def load(stores, threads: int, seconds: float, shared: bool = False) -> dict:
    """Run the bets; the counts of the stores' writers over the run."""
    stop = time.monotonic() + seconds
    start = [(s._writer.commits, s._writer.operations, s._writer.retried) for s in stores]

    def session(index: int) -> None:
        store = stores[index % len(stores)]
        player = f"p{index // len(stores)}" if shared else f"p{index}"  # shared: each player on both stores
        while time.monotonic() < stop:
            try:
                store.update_table(player, 10**9, LIMITS, lambda table: table.place(RED, 1))
                store.update_table(player, 10**9, LIMITS, lambda table: table.clear())
            except InsufficientChips:
                pass

    began = time.monotonic()
    workers = [threading.Thread(target=session, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - began
    commits = sum(s._writer.commits - c for s, (c, _, _) in zip(stores, start, strict=True))
    operations = sum(s._writer.operations - o for s, (_, o, _) in zip(stores, start, strict=True))
    retried = sum(s._writer.retried - r for s, (_, _, r) in zip(stores, start, strict=True))
    return {"elapsed": elapsed, "commits": commits, "operations": operations, "retried": retried}


def report(name: str, counts: dict) -> None:
    elapsed, commits, operations = counts["elapsed"], counts["commits"], counts["operations"]
    print(
        f"{name}: {operations / elapsed:.0f} operations/s, {commits / elapsed:.0f} commits/s, "
        f"{operations / max(commits, 1):.1f} operations per commit, {counts['retried']} batches run again"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--stores", type=int, choices=(1, 2), default=1)
    parser.add_argument("--shared", action="store_true", help="with --stores 2: every player on both")
    options = parser.parse_args(argv)
    from pgserver import PostgresServer

    with tempfile.TemporaryDirectory() as directory:
        key = os.path.join(directory, "key")
        sqlite = open_store(os.path.join(directory, "bench.db"), audit_key=key + "-sqlite", audit_required=True)
        try:
            report(f"sqlite, {options.threads} threads", load([sqlite], options.threads, options.seconds))
        finally:
            sqlite.close()
        with PostgresServer() as server:
            url = server.create_database("bench")
            stores = [open_store(url, audit_key=key, audit_required=True) for _ in range(options.stores)]
            try:
                name = f"postgresql, {options.threads} threads, {options.stores} store(s)"
                name += ", players shared" if options.shared else ""
                report(name, load(stores, options.threads, options.seconds, options.shared))
            finally:
                for store in stores:
                    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
