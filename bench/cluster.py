#!/usr/bin/env python3
"""S6, S7 on PostgreSQL with 1 and 3 daemons behind HAProxy, and S10 on it, in one run: `make bench`.

Each cluster is ``scripts/cluster.py``'s: a throw-away PostgreSQL (``fsync`` and
``synchronous_commit`` on), N daemons on it (``--proxy-protocol v2``), HAProxy in front
(``balance leastconn``, ``send-proxy-v2``). The load is bench/run.py's, unchanged, driven by the
same C load generator at HAProxy's frontend:

- S6: ``BET RED 1`` + ``SPIN`` on 50 guest connections (``USER guest`` again every 40 rounds);
- S6R: the same rounds by 50 *registered* players (one user each: guests never reach the store),
  durable, driven by ``scripts/cluster.py``'s ClusterLoad (the client library, threads of this
  process: its CPU is shown as the load generator's);
- S7: durable ``JOB`` + ``READ <meter> 42`` on 50 connections of one reader (demo mode), each
  reading committed to PostgreSQL before its reply (the daemons get ``--max-jobs-per-reader 1000``:
  one account holds a job per connection).
- S10 (bench/tables_s10.py, one daemon on PostgreSQL): the durable settlement time of one shared
  table of 50 registered players, each betting every round (from the daemon's debug log).

For each cluster size and scenario it reports the rate, the latency, and the CPU of each part in
the window (daemons, PostgreSQL, HAProxy, load generator) from /proc, so what the 2-core machine
runs out of shows; then the ratio of 3 daemons to 1.

    python3 bench/cluster.py                     # 1 and 3 daemons, S6 and S7, 5 s windows; S10
    python3 bench/cluster.py --quick             # 2 s windows
    python3 bench/cluster.py --sizes 1,2,3 --scenarios S7

Writes bench/results/cluster.json; docs/SCALING.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, ROOT)

import run  # noqa: E402  bench/run.py: its loads, run_load and the reader's credentials
import tables_s10  # noqa: E402  bench/tables_s10.py: S10, here one table of 50 registered players
from cluster import Cluster, ClusterLoad, write_load_files  # noqa: E402  scripts/cluster.py
from pgserver import PostgresServer  # noqa: E402  scripts/pgserver.py

from lineproto.domain.accounts import User, format_user, hash_password  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: S6R's registered players (one connection each).
S6R_PLAYERS = 50
DAEMON_ARGS = (
    "--log-level",
    "warning",
    "--max-connections",
    "20000",
    "--max-per-address",
    "1000",  # every load connection comes from 127.0.0.1, as HAProxy's header says
    "--max-jobs-per-reader",
    "1000",
)


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc/<pid>/stat (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (PostgreSQL's backends and workers under the postmaster)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as file:
                    if int(file.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


class ClusterLoadTarget:
    """What bench/run.py's ``run_load`` reads from a server, for a whole cluster: its port (HAProxy's),
    its CPU seconds (every part summed) and context switches; each CPU reading kept per part."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.port = cluster.port
        self.readings: list[dict[str, float]] = []

    def parts(self) -> dict[str, list[int]]:
        daemons = [d.process.pid for d in self.cluster.daemons if d.process is not None]
        haproxy = [self.cluster.haproxy.process.pid] if self.cluster.haproxy and self.cluster.haproxy.process else []
        postgres: list[int] = []
        if self.cluster.postgres is not None:
            postmaster = int((self.cluster.postgres.data / "postmaster.pid").read_text().split()[0])
            postgres = [postmaster, *children(postmaster)]
        return {"daemons": daemons, "postgres": postgres, "haproxy": haproxy}

    def cpu_seconds(self) -> float:
        reading = {part: sum(cpu_seconds(pid) for pid in pids) for part, pids in self.parts().items()}
        self.readings.append(reading)
        return sum(reading.values())

    def context_switches(self) -> int:
        return 0  # per-thread counts of three kinds of process say little here

    def window_cpu_pct(self, seconds: float) -> dict[str, float]:
        """Each part's CPU in the window (the last two readings), in % of one core."""
        start, end = self.readings[-2], self.readings[-1]
        return {part: 100.0 * (end[part] - start[part]) / seconds for part in end}


def users_file(directory: str) -> str:
    """S6R's players (p00...) and admin, and bench/run.py's reader (S7); cheap hashes (logins are not
    what is measured here)."""
    path, _ = write_load_files(Path(directory), S6R_PLAYERS, 0, 1)
    user = User(run.READER[0], "Bench Reader", frozenset({"reader"}), hash_password(run.READER[1], n=2**10))
    with open(path, "a", encoding="utf-8") as file:
        file.write(format_user(user) + "\n")
    return str(path)


def loads(args) -> dict[str, run.Load | None]:
    """bench/run.py's loads of the scenarios asked for; None for S6R (the client library's players)."""
    chosen: dict[str, run.Load | None] = {scenario.key: scenario.load for scenario in run.scenarios(args)}
    chosen["S6R"] = None
    return {key: chosen[key] for key in args.scenarios if key in chosen}


def registered_rounds(cluster: Cluster, args) -> dict:
    """S6R: :data:`S6R_PLAYERS` registered players, one retrying client each (scripts/cluster.py's
    ClusterLoad, threads of this process), ``BET RED`` + ``SPIN`` in turn: durable rounds/s."""
    target = ClusterLoadTarget(cluster)
    load = ClusterLoad(cluster, [f"p{i:02}" for i in range(S6R_PLAYERS)], []).start()
    try:
        time.sleep(args.warmup)  # the window is a stretch of time: these are its edges
        ops, mine = sum(load.ops().values()), os.times()
        target.cpu_seconds()
        time.sleep(args.duration)
        ops, mine = sum(load.ops().values()) - ops, os.times().user + os.times().system - mine.user - mine.system
        target.cpu_seconds()
    finally:
        load.stop()
    failed = [tally.error for tally in load.tallies.values() if tally.error is not None]
    cpu_pct = target.window_cpu_pct(args.duration)
    cpu_pct["loadgen"] = 100.0 * mine / args.duration
    return {
        "rate": ops / 2 / args.duration,
        "unit": "rounds/s",
        "p50_ms": None,
        "p99_ms": None,
        "errors": len(failed),
        "bad_replies": 0,
        "setup_failures": 0,
        "cpu_pct": cpu_pct,
        "failures": [repr(error) for error in failed][:3],
    }


def measure(args, sizes: list[int], workdir: str) -> dict:
    results: dict = {}
    for size in sizes:
        for key, load in loads(args).items():
            rates = []
            for rep in range(args.repetitions):
                with Cluster(
                    daemons=size,
                    users_file=users_file(workdir),
                    daemon_args=DAEMON_ARGS,
                    directory=os.path.join(workdir, f"{key}-{size}-{rep}"),
                ) as cluster:
                    if load is None:
                        result = registered_rounds(cluster, args)
                    else:
                        target = ClusterLoadTarget(cluster)
                        result = run.run_load(target, load, args, workdir)
                        result["cpu_pct"] = target.window_cpu_pct(args.duration)
                        result["cpu_pct"]["loadgen"] = result["loadgen_cpu_pct"]
                rates.append(result)
                bad = result["errors"] + result["bad_replies"] + result["setup_failures"]
                cpu = "  ".join(f"{part} {pct:4.0f}%" for part, pct in result["cpu_pct"].items())
                run.log(
                    f"  {key} {size} daemon(s) rep {rep + 1}: {result['rate']:8.0f} {result['unit']:11} "
                    f"p50 {fmt_ms(result['p50_ms'])} ms  p99 {fmt_ms(result['p99_ms'])} ms  {cpu}  err {bad}"
                )
            best = sorted(rates, key=lambda r: r["rate"])[len(rates) // 2]  # the median repetition
            results.setdefault(key, {})[size] = best
    if "S10" in args.scenarios:
        results["S10"] = settlement(args, workdir)
    return results


def settlement(args, workdir: str) -> dict:
    """S10 on one daemon on PostgreSQL: one shared table of 50 registered players, each betting every
    round; the durable settlement time per round from the daemon's log (bench/tables_s10.py)."""
    with PostgresServer() as server:
        dsn = server.create_database("s10")
        figures = tables_s10.measure(
            registered=True,
            seconds=args.duration * 2,
            tables=1,
            players=50,
            round_seconds=1.0,
            daemon_args=("--db", dsn, "--audit-key", os.path.join(workdir, "s10.audit-key")),  # the last --db counts
        )
    run.log("  " + tables_s10.describe(figures))
    return figures


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(results: dict, sizes: list[int]) -> str:
    lines = [
        "| scenario | daemons | rate | p50 ms | p99 ms | daemons CPU | PostgreSQL CPU | HAProxy CPU | loadgen CPU "
        f"| x {sizes[0]} daemon(s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, by_size in results.items():
        if key == "S10":
            continue
        base = by_size[sizes[0]]["rate"]
        for size in sizes:
            r = by_size[size]
            cpu = r["cpu_pct"]
            lines.append(
                f"| {key} | {size} | {r['rate']:.0f} {r['unit']} | {fmt_ms(r['p50_ms'])} | {fmt_ms(r['p99_ms'])} "
                f"| {cpu['daemons']:.0f}% | {cpu['postgres']:.0f}% | {cpu['haproxy']:.0f}% | {cpu['loadgen']:.0f}% "
                f"| {r['rate'] / base:.2f}x |"
            )
    if "S10" in results:
        lines += ["", "S10 (one daemon on PostgreSQL): " + tables_s10.describe(results["S10"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s windows")
    parser.add_argument("--sizes", default="1,3", help="cluster sizes, comma-separated (default 1,3)")
    parser.add_argument("--scenarios", default="S6,S6R,S7,S10", help="some of S6, S6R, S7, S10 (default all)")
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--duration", type=float, help="seconds of the timed window (default 5; --quick 2)")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=1, help="load generator processes (default 1)")
    parser.add_argument("--loadgen", default=run.DEFAULT_LOADGEN)
    parser.add_argument("--output", default=os.path.join(run.RESULTS_DIR, "cluster.json"))
    args = parser.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.scenarios = [key.strip().upper() for key in args.scenarios.split(",") if key.strip()]
    if not set(args.scenarios) <= {"S6", "S6R", "S7", "S10"} or not args.scenarios:
        parser.error(f"--scenarios: some of S6, S6R, S7, S10, not {','.join(args.scenarios)}")
    try:
        sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes: whole numbers, comma-separated: {args.sizes!r}")
    if not sizes or min(sizes) < 1:
        parser.error("--sizes: each at least 1")
    if not os.access(args.loadgen, os.X_OK):
        run.log(f"bench: no load generator at {args.loadgen}: build it with `make bench` (cc bench/loadgen.c)")
        return 2
    run.raise_fd_limit()
    workdir = tempfile.mkdtemp(prefix="cluster-bench-")
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results = measure(args, sizes, workdir)
    table = report(results, sizes)
    print(table)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as file:
        json.dump(
            {
                "started": started,
                "command": " ".join(["bench/cluster.py", *(argv if argv is not None else sys.argv[1:])]),
                "cores": os.cpu_count(),
                "duration_s": args.duration,
                "results": results,
                "table": table,
            },
            file,
            indent=2,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
