#!/usr/bin/env python3
"""Where does the daemon's time go under load? `make bench-profile`.

Runs our daemon under a scenario's load (S2 and S4 by default) and, during the window, reads:

- /proc: the process's CPU time and every thread's context switches (per reply);
- `perf stat` (if installed and permitted): context switches, CPU migrations and the system
  calls that matter here (futex = GIL and lock hand-offs, poll = socket timeouts, recvfrom,
  sendto), per reply;
- `py-spy record --gil` (if installed; `make bench-profile` installs it into the bench venv):
  which Python lines run while the GIL is held, summed by function.

    python3 bench/profile.py                         # S2 and S4 on this repository's daemon
    python3 bench/profile.py --root /tmp/copy S4     # a patched copy, one scenario
    python3 bench/profile.py --engine threads S4     # the threads engine (default: events, asyncio loop)
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench

SYSCALLS = ("futex", "poll", "recvfrom", "sendto")
PROFILED = {"S1": (1, 1), "S2": (50, 1), "S3": (50, 16), "S4": (1000, 1)}


def perf_available() -> bool:
    if not shutil.which("perf"):
        return False
    probe = subprocess.run(["perf", "stat", "-e", "context-switches", "--", "true"], capture_output=True, text=True)
    return probe.returncode == 0


def tool(name: str) -> str | None:
    local = os.path.join(os.path.dirname(sys.executable), name)
    return local if os.path.exists(local) else shutil.which(name)


def perf_stat(pid: int, seconds: float, out: dict) -> None:
    events = ["context-switches", "cpu-migrations", "task-clock"] + [f"syscalls:sys_enter_{s}" for s in SYSCALLS]
    result = subprocess.run(
        ["perf", "stat", "-x", ",", "-e", ",".join(events), "-p", str(pid), "--", "sleep", str(seconds)],
        capture_output=True,
        text=True,
    )
    for line in result.stderr.splitlines():
        parts = line.split(",")
        if len(parts) >= 3 and parts[0].replace(".", "").isdigit():
            out[parts[2]] = float(parts[0])


def perf_record(pid: int, seconds: float, path: str, out: dict) -> None:
    """Where the CPU time goes by binary: kernel (scheduling, futex, TCP), libpython, libc."""
    result = subprocess.run(
        ["perf", "record", "-F", "499", "-p", str(pid), "-o", path, "--", "sleep", str(seconds)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return
    for sort, key in (("dso", "dso"), ("sym", "symbols")):
        report = subprocess.run(
            ["perf", "report", "-i", path, "--no-children", "--sort", sort, "--stdio"], capture_output=True, text=True
        )
        rows = []
        for line in report.stdout.splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "%" in line.split()[0]:
                rows.append(" ".join(line.split()))
        out[key] = rows[:8]


def py_spy(pyspy: str, pid: int, seconds: float, path: str, out: dict) -> None:
    result = subprocess.run(
        [
            pyspy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "250",
            "--gil",
            "--nonblocking",
            "--format",
            "raw",
            "-o",
            path,
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 or not os.path.exists(path):
        out["error"] = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["failed"]
        return
    by_function = collections.Counter()
    by_line = collections.Counter()
    total = 0
    with open(path, encoding="utf-8", errors="replace") as file:
        for line in file:
            stack, _, count = line.rstrip().rpartition(" ")
            if not count.isdigit():
                continue
            count = int(count)
            total += count
            frames = [frame for frame in stack.split(";") if frame]
            if frames:
                by_line[frames[-1]] += count
                name = frames[-1].split(" (")[0]
                by_function[name] += count
    out["samples"] = total
    out["functions"] = by_function.most_common(12)
    out["lines"] = by_line.most_common(12)


def profile(key: str, args, workdir: str) -> None:
    conns, inflight = PROFILED[key]
    duration = args.duration
    load = bench.Load(conns=conns, inflight=inflight, workers=1)
    help_text = bench.daemon_help(args.root)
    features = {"db": bench.has_option(help_text, "--db"), "db_sync": False}
    engine = []
    if bench.has_option(help_text, "--engine"):
        engine = ["--engine", args.engine] + (["--loop", args.loop] if args.engine == "events" else [])
    argv = bench.daemon_argv(workdir, f"profile-{key}", features, engine)
    server = bench.Server("lineproto", argv, workdir, cwd=args.root)
    with server.start():
        stats: dict = {}
        spy: dict = {}
        measure_from = 1.0  # seconds into the window
        measure_for = max(1.0, duration - 2.0)
        helpers = []
        cpu_split: dict = {}
        if args.perf and perf_available():
            helpers.append(
                threading.Thread(target=lambda: (time.sleep(measure_from), perf_stat(server.pid, measure_for, stats)))
            )
            data = os.path.join(workdir, f"{key}.perf.data")
            helpers.append(
                threading.Thread(
                    target=lambda: (time.sleep(measure_from), perf_record(server.pid, measure_for, data, cpu_split))
                )
            )
        pyspy = tool("py-spy") if args.py_spy else None
        if pyspy:
            raw = os.path.join(workdir, f"{key}.pyspy.txt")
            helpers.append(
                threading.Thread(
                    target=lambda: (time.sleep(measure_from), py_spy(pyspy, server.pid, measure_for, raw, spy))
                )
            )

        class Args:  # what run_load reads
            loadgen = args.loadgen
            warmup = 1.0

        Args.duration = duration
        result = bench.run_load(server, load, Args, workdir, on_window_start=lambda: [h.start() for h in helpers])
        for helper in helpers:
            helper.join()
    rate = result["replies_per_s"]
    print(
        f"\n## {key}: {conns} connections x {inflight} in flight "
        f"({args.root}; {' '.join(engine) or 'default engine'})\n"
    )
    print(
        f"- {rate:,.0f} replies/s, p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.1f} ms; "
        f"server CPU {result['server_cpu_pct']:.0f}% (of {os.cpu_count()} cores: 100% = one core); "
        f"context switches per reply (/proc, every thread) "
        f"{result['ctx_switches_per_reply'] or 0:.1f}"
    )
    if stats:
        replies = rate * measure_for
        per = {name: value / replies for name, value in stats.items() if name != "task-clock"}
        cells = ", ".join(f"{name.replace('syscalls:sys_enter_', '')} {value:.2f}" for name, value in per.items())
        print(f"- perf stat, per reply: {cells}")
    elif args.perf:
        print("- perf stat: not available (perf missing or not permitted)")
    if cpu_split.get("dso"):
        print("- perf record, CPU samples by binary: " + "; ".join(cpu_split["dso"][:4]))
        print("  top symbols: " + "; ".join(cpu_split.get("symbols", [])[:5]))
    if spy.get("samples"):
        print(f"- py-spy --gil: {spy['samples']} samples with the GIL held; by function (self):")
        for name, count in spy["functions"]:
            print(f"    {100 * count / spy['samples']:5.1f}%  {name}")
        print("  by line (self):")
        for name, count in spy["lines"][:8]:
            print(f"    {100 * count / spy['samples']:5.1f}%  {name}")
    elif pyspy:
        print(f"- py-spy: {spy.get('error', 'no samples')}")
    elif args.py_spy:
        print("- py-spy: not installed (`make bench-profile` installs it into the bench venv)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", default=["S2", "S4"], help="S1-S4 (default S2 S4)")
    parser.add_argument("--root", default=bench.ROOT, help="repository (copy) whose daemon.py to run")
    parser.add_argument("--duration", type=float, default=8.0, help="window seconds (default 8)")
    parser.add_argument("--loadgen", default=bench.DEFAULT_LOADGEN)
    parser.add_argument(
        "--engine",
        choices=("events", "threads"),
        default="events",
        help="the daemon's engine (default events; ignored by a daemon without --engine)",
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the events engine's loop (default asyncio, as bench/run.py's lineproto)",
    )
    parser.add_argument("--no-perf", dest="perf", action="store_false")
    parser.add_argument("--no-py-spy", dest="py_spy", action="store_false")
    args = parser.parse_args(argv)
    args.root = os.path.abspath(args.root)
    bench.raise_fd_limit()
    workdir = tempfile.mkdtemp(prefix="profile-", dir=bench._tmp_root())
    try:
        for key in args.scenarios:
            profile(key.upper(), args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
