#!/usr/bin/env python3
"""Benchmark lineproto against peer servers in one run: `make bench`.

Our daemon runs as three servers side by side: `lineproto` (the default engine: `--engine events
--loop asyncio`), `lineproto-uvloop` (`--engine events --loop uvloop`, when uvloop is installed)
and `lineproto-threads` (`--engine threads`). Every server is started the same way (`--port 0
--notify FILE`, waited for by its notify file, never by a sleep), on 127.0.0.1 only, driven by
the same C load generator (bench/loadgen.c) and stopped again; the server's CPU time is read from
/proc/<pid>/stat at the edges of the timed window. Each scenario runs its repetitions interleaved
over the servers and reports medians.

S1-S5 run every server; S6, S7 (with the xmlrpc meter server) and S9 only our daemons. S9 (200
clients sending wrong passwords) drives its clients with the C load generator's sessions mode (one
epoll process, a few ms of CPU per second: the hashing daemon gets the cores) and times one guest
connection's NOOPs from a thread of this runner, with a 2 ms pause between them so that the probe
measures the daemon's responsiveness without loading it.

    python3 bench/run.py                 # full: 1 s warm-up, 5 s window, 3 repetitions
    python3 bench/run.py --quick         # development: 1 repetition, 2 s windows
    python3 bench/run.py --scenarios S2,S4 --servers lineproto,lineproto-threads,bare-socketserver

Prints one table (markdown) and writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib.util import find_spec

import tables_s10  # bench/tables_s10.py: S10

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SERVERS_DIR = os.path.join(HERE, "servers")
DEFAULT_LOADGEN = os.path.join(ROOT, "build", "bench", "loadgen")
RESULTS_DIR = os.path.join(HERE, "results")
HOST = "127.0.0.1"  # never anything else
OURS = "lineproto"  # the default engine: events, on the asyncio loop
OURS_UVLOOP = "lineproto-uvloop"
OURS_THREADS = "lineproto-threads"
#: Our daemon as measured: server name -> the engine options it runs with.
DAEMON_ENGINES = {
    OURS: ["--engine", "events", "--loop", "asyncio"],
    OURS_UVLOOP: ["--engine", "events", "--loop", "uvloop"],
    OURS_THREADS: ["--engine", "threads"],
}
PROTOCOL_MARK = "asyncio-protocol"
BARE = "bare-socketserver"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
READER = ("benchreader", "bench reader password")
S8_CONNECTIONS = 10_000
#: S6's rounds/s in the previous docs/BENCHMARKS.md (full mode, commit 4282470, threads-only
#: daemon): the baseline of the "S6 >= 3x" target.
S6_OLD_ROUNDS_PER_S = 6152
#: S9: clients sending wrong passwords at once; failed PASSes per connection before the daemon
#: answers 421 and closes (its MAX_LOGIN_FAILURES); the guest probe's pause between NOOPs.
S9_CLIENTS = 200
S9_FAILURES_PER_CONNECTION = 5
S9_WRONG_PASSWORD = "wrong"
S9_NOOP_GAP = 0.002


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- servers


@dataclass
class ServerSpec:
    name: str
    script: str | None  # under bench/servers/, or None for our daemon
    needs: str | None = None  # module that must be importable
    label: str = ""

    def available(self) -> str | None:
        """None when the server can run, else why not."""
        if self.needs and find_spec(self.needs) is None:
            return (
                f"{self.needs} is not importable in {os.path.relpath(sys.executable, ROOT)} "
                f"(the bench extras could not be installed?)"
            )
        return None


PEERS = [
    ServerSpec(OURS, None, label="lineproto daemon: events engine on the asyncio loop (the default)"),
    ServerSpec(OURS_UVLOOP, None, needs="uvloop", label="lineproto daemon: events engine on uvloop"),
    ServerSpec(OURS_THREADS, None, label="lineproto daemon: threads engine (ThreadingTCPServer)"),
    ServerSpec(BARE, "bare_socketserver.py", label="bare socketserver NOOP loop"),
    ServerSpec("asyncio-streams", "asyncio_streams.py", label="asyncio start_server"),
    ServerSpec(PROTOCOL_MARK, "asyncio_protocol.py", label="asyncio Protocol"),
    ServerSpec("pyftpdlib", "pyftpdlib_ftp.py", needs="pyftpdlib", label="pyftpdlib FTP"),
    ServerSpec("twisted", "twisted_lines.py", needs="twisted", label="Twisted LineOnlyReceiver"),
]
XMLRPC = ServerSpec("xmlrpc-meter", "xmlrpc_meter.py", label="stdlib xmlrpc.server meter service")


def daemon_help(root: str = ROOT) -> str:
    result = subprocess.run(
        [sys.executable, "daemon.py", "--help"], cwd=root, capture_output=True, text=True, timeout=60
    )
    return result.stdout + result.stderr


def has_option(help_text: str, option: str) -> bool:
    """Whether `daemon.py --help` lists `option` (not merely a longer option starting with it)."""
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text) is not None


PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|^Traceback")
#: Expected warnings: a fresh database without users (S1-S6, S8 run without a users file).
EXPECTED_WARNINGS = re.compile(r"no users yet")


def note_daemon_log(server: Server, result: dict) -> None:
    """Put the daemon's warnings and errors of the run into the result (count, the first few)."""
    problems = server.log_problems()
    result["server_log_problems"] = len(problems)
    result["server_log"] = problems[:5]
    for line in problems[:2]:
        result.setdefault("diagnostics", []).append(f"{server.name} log: {line[:200]}")


class StartFailed(Exception):
    pass


class Server:
    """A running server process: started, awaited through its notify file, stopped."""

    def __init__(self, name: str, argv: list[str], workdir: str, cwd: str = ROOT):
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.cwd = cwd
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.stderr_path = os.path.join(workdir, f"{name}.stderr")
        self.stop_seconds: float | None = None  # how long the last stop() took (SIGTERM to exit)

    def start(self, timeout: float = 30.0) -> Server:
        notify = os.path.join(self.workdir, f"{self.name}.notify")
        if os.path.exists(notify):
            os.unlink(notify)
        argv = self.argv + ["--notify", notify]
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(
                argv, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(notify):
                with open(notify, encoding="utf-8") as file:
                    text = file.read().strip()
                host, _, port = text.rpartition(":")
                if host != HOST:
                    self.stop()
                    raise StartFailed(f"listens on {host}, not {HOST}")
                self.port = int(port)
                return self
            if self.process.poll() is not None:
                raise StartFailed(f"exited with {self.process.returncode}: {self.stderr_tail()}")
            time.sleep(0.01)
        self.stop()
        raise StartFailed(f"no notify file after {timeout:.0f} s: {self.stderr_tail()}")

    def log_problems(self) -> list[str]:
        """The server's stderr lines at WARNING or above, and tracebacks (our daemons log at warning)."""
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as file:
                return [line.strip() for line in file if PROBLEM.search(line) and not EXPECTED_WARNINGS.search(line)]
        except OSError:
            return []

    def stderr_tail(self, lines: int = 3) -> str:
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as file:
                tail = [line.strip() for line in file.read().splitlines() if line.strip()][-lines:]
        except OSError:
            return ""
        return " | ".join(tail)

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """utime + stime of the whole process (every thread), from /proc/<pid>/stat."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as file:
            fields = file.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def status(self) -> dict[str, str]:
        with open(f"/proc/{self.pid}/status", encoding="ascii") as file:
            return dict(line.split(":", 1) for line in file.read().splitlines() if ":" in line)

    def rss_kb(self) -> int:
        return int(self.status()["VmRSS"].split()[0])

    def peak_rss_kb(self) -> int:
        """VmHWM: the most resident memory the process has had so far."""
        return int(self.status()["VmHWM"].split()[0])

    def context_switches(self) -> int:
        """Voluntary + involuntary context switches of every live thread."""
        total = 0
        try:
            tasks = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return 0
        for task in tasks:
            try:
                with open(f"/proc/{self.pid}/task/{task}/status", encoding="ascii") as file:
                    for line in file:
                        if "ctxt_switches" in line:
                            total += int(line.split()[1])
            except (OSError, ValueError, IndexError):
                continue
        return total

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            log(f"  {self.name}: still running 15 s after SIGTERM: killed")
            self.process.kill()
            self.process.wait()
        self.stop_seconds = time.monotonic() - started

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------------- a tiny client


class LineClient:
    """Blocking client for probes: connect, greeting, one command at a time."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buffer = b""

    def reply(self) -> str:
        """The final line of the next reply (`NNN text`)."""
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                text = line.rstrip(b"\r").decode("utf-8", "replace")
                if not (len(text) >= 4 and text[3] == "-" and text[:3].isdigit()):
                    return text
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the server")
            self.buffer += data

    def command(self, line: str) -> str:
        self.sock.sendall(line.encode("utf-8") + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()


def expect(client: LineClient, line: str, codes: tuple[str, ...]) -> str | None:
    """None if `line` got one of `codes`, else why not."""
    try:
        reply = client.command(line)
    except OSError as exc:
        return f"{line!r} failed: {exc}"
    if reply[:3] not in codes:
        return f"{line!r} answered {reply[:100]!r}"
    return None


# ---------------------------------------------------------------------------------- load


@dataclass
class Load:
    """One loadgen (or xmlrpc_load) invocation and how to read its figures."""

    conns: int = 1
    inflight: int = 1
    workers: int = 1
    script: tuple[str, ...] = ("NOOP",)
    setup: tuple[str, ...] = ()
    sessions: bool = False
    reset_every: int = 0
    unit: str = "replies/s"
    argv: list[str] | None = None  # a ready command line instead of loadgen's (xmlrpc)
    greet_probes: int = 0  # new clients timed to their greeting during the window (accepts under load)
    allow: tuple[int, ...] = ()  # 4yz/5yz reply codes that are expected (not counted as bad replies)

    def command(self, loadgen: str, port: int, warmup: float, duration: float) -> list[str]:
        if self.argv is not None:
            return self.argv + ["--warmup", str(warmup), "--duration", str(duration)]
        argv = [
            loadgen,
            "--host",
            HOST,
            "--port",
            str(port),
            "-c",
            str(self.conns),
            "-k",
            str(self.inflight),
            "-w",
            str(self.workers),
            "--warmup",
            str(warmup),
            "--duration",
            str(duration),
        ]
        for cmd in self.script:
            argv += ["--cmd", cmd]
        for cmd in self.setup:
            argv += ["--setup", cmd]
        if self.sessions:
            argv.append("--sessions")
        if self.reset_every:
            argv += ["--reset-every", str(self.reset_every)]
        for code in self.allow:
            argv += ["--allow", str(code)]
        return argv + ["--ack"]


class GreetingProbe(threading.Thread):
    """During the window: `count` new clients, evenly spaced, each timed from connect to greeting."""

    def __init__(self, port: int, count: int, window: float):
        super().__init__(daemon=True)
        self.port, self.count, self.window = port, count, window
        self.times: list[float] = []

    def run(self):
        for _index in range(self.count):
            time.sleep(self.window / (self.count + 1))
            started = time.monotonic()
            try:
                client = LineClient(self.port, timeout=10)
                ok = client.reply().startswith("220")
                client.close()
            except OSError:
                ok = False
            self.times.append((time.monotonic() - started) * 1000 if ok else float("inf"))


def run_load(server: Server, load: Load, args, workdir: str, on_window_start=None, on_window_end=None) -> dict:
    """Drive `server` with `load`; the loadgen's figures plus the server's CPU in the window."""
    argv = load.command(args.loadgen, server.port, args.warmup, args.duration)
    stderr_path = os.path.join(workdir, "loadgen.stderr")
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT
        )
    cpu = {}
    ctx = {}
    result = None
    probe = GreetingProbe(server.port, load.greet_probes, args.duration) if load.greet_probes else None
    deadline = time.monotonic() + 180 + args.warmup + args.duration
    try:
        for line in process.stdout:
            line = line.strip()
            if line == "window-start":
                cpu["start"] = server.cpu_seconds()
                ctx["start"] = server.context_switches()
                if probe:
                    probe.start()
                if on_window_start:
                    on_window_start()
            elif line == "window-end":
                cpu["end"] = server.cpu_seconds()
                ctx["end"] = server.context_switches()
                if on_window_end:
                    on_window_end()
                try:
                    process.stdin.write("done\n")  # loadgen --ack: the connections may close now
                    process.stdin.close()
                except OSError:
                    pass
            elif line.startswith("{"):
                result = json.loads(line)
            if time.monotonic() > deadline:
                break
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with open(stderr_path, encoding="utf-8", errors="replace") as file:
        diagnostics = [line.strip() for line in file if line.strip()]
    if result is None or "start" not in cpu or "end" not in cpu:
        raise RuntimeError(f"load generator failed (exit {process.returncode}): {' | '.join(diagnostics[-3:])}")
    window = args.duration
    result["server_cpu_pct"] = 100.0 * (cpu["end"] - cpu["start"]) / window
    result["loadgen_cpu_pct"] = 100.0 * result.get("loadgen_cpu_s", 0.0) / window
    switches = ctx["end"] - ctx["start"]
    result["ctx_switches_per_reply"] = switches / result["replies"] if result["replies"] else None
    result["rate"] = result["units_per_s"] if load.unit != "replies/s" else result["replies_per_s"]
    result["unit"] = load.unit
    result["diagnostics"] = diagnostics[:5]
    if probe:
        probe.join(timeout=15)
        result["greeting_under_load_ms"] = max(probe.times) if probe.times else None
    return result


# ---------------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    key: str
    title: str
    load: Load
    daemons_only: bool = False  # True: our daemons (and the variants) only, plus `baselines`
    baselines: tuple[str, ...] = ()  # non-daemon servers of a daemons-only scenario (S7: xmlrpc)
    note: str = ""
    loads: dict[str, Load] = field(default_factory=dict)  # per-server overrides


def scenarios(args) -> list[Scenario]:
    w = args.workers
    s5 = Load(conns=50, workers=w, script=("USER guest", "QUIT"), sessions=True, unit="sessions/s")
    return [
        Scenario("S1", "1 connection, 1 request in flight", Load(conns=1, workers=1)),
        Scenario("S2", "50 connections, 1 in flight each", Load(conns=50, workers=w, greet_probes=5)),
        Scenario("S3", "50 connections, 16 pipelined each", Load(conns=50, inflight=16, workers=w, greet_probes=5)),
        Scenario("S4", "1000 connections, 1 in flight each", Load(conns=1000, workers=w, greet_probes=5)),
        Scenario(
            "S5",
            "connect + greeting + USER guest + QUIT, 50 concurrent clients",
            s5,
            loads={
                "pyftpdlib": Load(
                    conns=50, workers=w, script=("USER anonymous", "QUIT"), sessions=True, unit="sessions/s"
                )
            },
            note="pyftpdlib logs in with USER anonymous (331)",
        ),
        Scenario(
            "S6",
            "BET RED 1 + SPIN rounds on 50 guest connections",
            Load(
                conns=50,
                workers=w,
                setup=("USER guest",),
                script=("BET RED 1", "SPIN"),
                reset_every=40,
                unit="rounds/s",
            ),
            daemons_only=True,
            note="USER guest again every 40 rounds (a fresh 100-chip table), not counted",
        ),
        Scenario(
            "S7",
            "durable JOB + READ on 50 reader connections (SQLite)",
            Load(
                conns=50,
                workers=w,
                setup=("USER " + READER[0], "PASS " + READER[1]),
                script=("JOB", "READ $W 42"),
                unit="readings/s",
            ),
            daemons_only=True,
            baselines=(XMLRPC.name,),
        ),
        Scenario(
            "S6L",
            "S6 with every BET and SPIN labelled (@b<n>, @s<n>: exactly-once, docs/PROTOCOL.md 9a)",
            Load(
                conns=50,
                workers=w,
                setup=("USER guest",),
                script=("@b$N BET RED 1", "@s$N SPIN"),
                reset_every=40,
                unit="rounds/s",
            ),
            daemons_only=True,
            note="a guest's labels are kept in memory for its login; compare with S6 of the same run",
        ),
        Scenario(
            "S7L",
            "S7 with every JOB and READ labelled: each label recorded in the reading's transaction",
            Load(
                conns=50,
                workers=w,
                setup=("USER " + READER[0], "PASS " + READER[1]),
                script=("@j$N JOB", "@r$N READ $W 42"),
                unit="readings/s",
            ),
            daemons_only=True,
            note="compare with S7 of the same run",
        ),
    ]


def daemon_argv(workdir: str, tag: str, features: dict, extra: list[str] = ()) -> list[str]:
    argv = [
        sys.executable,
        "daemon.py",
        "--host",
        HOST,
        "--port",
        "0",
        "--log-level",
        "warning",
        "--max-connections",
        "20000",
    ]
    if features["db"]:
        argv += ["--db", os.path.join(workdir, f"{tag}.db")]
    return argv + list(extra)


#: Extra daemons to measure side by side with ours: name -> repository root (--variant NAME=DIR),
#: e.g. a patched copy of the package outside the repository ...
VARIANTS: dict[str, str] = {}
#: ... and the engine options each runs with (those of `lineproto` when its daemon.py has them).
VARIANT_ENGINES: dict[str, list[str]] = {}


def is_daemon(name: str) -> bool:
    return name in DAEMON_ENGINES or name in VARIANTS


def engine_args(name: str, features: dict) -> list[str]:
    """The engine options of one of our daemons (none when the daemon has no --engine)."""
    if name in VARIANTS:
        return list(VARIANT_ENGINES.get(name, []))
    return list(DAEMON_ENGINES[name]) if features.get("engine") else []


def make_server(name: str, workdir: str, tag: str, features: dict, extra: list[str] = ()) -> Server:
    if is_daemon(name):
        argv = daemon_argv(workdir, tag, features, engine_args(name, features) + list(extra))
        return Server(name, argv, workdir, cwd=VARIANTS.get(name, ROOT))
    spec = next(s for s in PEERS + [XMLRPC] if s.name == name)
    return Server(
        name,
        [sys.executable, os.path.join(SERVERS_DIR, spec.script), "--host", HOST, "--port", "0"] + list(extra),
        workdir,
    )


def collect_medians(key: str, names, runs: dict, out: dict, median) -> dict:
    """Put each server's median (of its repetitions that did not fail) into ``out``; log the skipped."""
    for name in names:
        good = [run for run in runs[name] if "failed" not in run]
        if good:
            out["servers"][name] = {
                "median": median(good),
                "runs": good,
                "failed_runs": [run["failed"] for run in runs[name] if "failed" in run],
            }
        elif runs[name] and name not in out["skipped"]:
            out["skipped"][name] = "every repetition failed: " + runs[name][0]["failed"]
    for name, why in out["skipped"].items():
        log(f"  {key} {name}: skipped: {why}")
    return out


def median_result(runs: list[dict]) -> dict:
    keys = ("rate", "replies_per_s", "units_per_s", "p50_ms", "p99_ms", "server_cpu_pct", "loadgen_cpu_pct")
    out = {key: statistics.median(run[key] for run in runs) for key in keys}
    switches = [run["ctx_switches_per_reply"] for run in runs if run.get("ctx_switches_per_reply") is not None]
    out["ctx_switches_per_reply"] = statistics.median(switches) if switches else None
    greet = [run["greeting_under_load_ms"] for run in runs if run.get("greeting_under_load_ms") is not None]
    out["greeting_under_load_ms"] = max(greet) if greet else None
    out["errors"] = sum(run["errors"] for run in runs)
    out["bad_replies"] = sum(run["bad_replies"] for run in runs)
    out["setup_failures"] = sum(run["setup_failures"] for run in runs)
    out["unit"] = runs[0]["unit"]
    out["repetitions"] = len(runs)
    return out


# ---- feature probes for S6 and S7 (the services may not have landed yet)


def probe_roulette(port: int) -> str | None:
    client = LineClient(port)
    try:
        client.reply()
        return (
            expect(client, "USER guest", ("230",))
            or expect(client, "BET RED 1", ("200",))
            or expect(client, "SPIN", ("250",))
        )
    finally:
        client.close()


def probe_meters(port: int) -> str | None:
    client = LineClient(port, timeout=30)
    try:
        client.reply()
        return (
            expect(client, "USER " + READER[0], ("331",))
            or expect(client, "PASS " + READER[1], ("230",))
            or expect(client, "JOB", ("250",))
            or _probe_read(client)
        )
    finally:
        client.close()


def _probe_read(client: LineClient) -> str | None:
    # the JOB reply was consumed by expect(); ask again (same meter until READ)
    reply = client.command("JOB")
    if not reply.startswith("250 "):
        return f"'JOB' answered {reply[:100]!r}"
    meter = reply[4:].split()[0]
    return expect(client, f"READ {meter} 42", ("250",))


def make_users_file(workdir: str) -> tuple[str | None, str | None]:
    """A users file with the bench reader; (path, None) or (None, why not)."""
    path = os.path.join(workdir, "users.txt")
    if os.path.exists(path):
        return path, None
    result = subprocess.run(
        [
            sys.executable,
            "daemon.py",
            "useradd",
            READER[0],
            "--name",
            "Bench Reader",
            "--role",
            "reader",
            "--password-stdin",
            "--users",
            path,
        ],
        cwd=ROOT,
        input=READER[1] + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0 or not os.path.exists(path):
        why = (result.stderr or result.stdout).strip().splitlines()
        return None, f"useradd failed: {why[-1] if why else result.returncode}"
    return path, None


def run_scenario(scenario: Scenario, servers: list[str], args, features: dict, workdir: str) -> dict:
    """Repetitions interleaved over the servers; returns the scenario's JSON."""
    if scenario.daemons_only:
        names = [name for name in servers if is_daemon(name)] + list(scenario.baselines)
    else:
        names = list(servers)
    daemons = [name for name in names if is_daemon(name)]
    out = {"title": scenario.title, "note": scenario.note, "servers": {}, "skipped": {}}
    extra: dict[str, list[str]] = {}
    loads: dict[str, Load] = {}
    for name in names:
        loads[name] = scenario.loads.get(name, scenario.load)
    if scenario.key in ("S7", "S7L"):
        users, why = make_users_file(workdir)
        if not features["db"]:
            why = "the daemon has no --db option (the SQLite store has not landed)"
        for name in daemons:
            if why:
                out["skipped"][name] = why
            else:
                extra[name] = ["--users", users] + (["--db-sync", "full"] if features["db_sync"] else [])
        xmlrpc_db = os.path.join(workdir, "xmlrpc.db")
        extra[XMLRPC.name] = ["--db", xmlrpc_db, "--sync", "full", "--user", f"{READER[0]}:{READER[1]}"]
    # feature probes, once per scenario and daemon
    if scenario.key in ("S6", "S7"):
        for name in daemons:
            if name in out["skipped"]:
                continue
            try:
                with make_server(
                    name, workdir, f"{scenario.key}-{name}-probe", features, extra.get(name, [])
                ).start() as server:
                    why = probe_roulette(server.port) if scenario.key == "S6" else probe_meters(server.port)
            except (StartFailed, OSError) as exc:
                why = f"the daemon did not start: {exc}"
            if why:
                out["skipped"][name] = why
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for rep in range(args.repetitions):
        for name in names:
            if name in out["skipped"]:
                continue
            tag = f"{scenario.key}-{name}-{rep}"
            load = loads[name]
            if name == XMLRPC.name:
                load = Load(
                    unit="readings/s",
                    argv=[
                        sys.executable,
                        os.path.join(HERE, "xmlrpc_load.py"),
                        "--url",
                        "",
                        "--threads",
                        "50",
                        "--procs",
                        str(args.workers),
                        "--user",
                        READER[0],
                        "--password",
                        READER[1],
                    ],
                )
                if os.path.exists(extra[name][1]):
                    for suffix in ("", "-wal", "-shm"):
                        if os.path.exists(extra[name][1] + suffix):
                            os.unlink(extra[name][1] + suffix)
            try:
                with make_server(name, workdir, tag, features, extra.get(name, [])).start() as server:
                    if load.argv is not None:
                        load.argv[load.argv.index("--url") + 1] = f"http://{HOST}:{server.port}/RPC2"
                    result = run_load(server, load, args, workdir)
                    if server.process.poll() is not None:
                        result["diagnostics"].append(f"server exited: {server.stderr_tail()}")
                if is_daemon(name):
                    note_daemon_log(server, result)
            except StartFailed as exc:
                out["skipped"][name] = f"did not start: {exc}"
                log(f"  {scenario.key} {name}: skipped: did not start: {exc}")
                continue
            except RuntimeError as exc:
                log(f"  {scenario.key} {name} rep {rep + 1}: {exc}")
                runs[name].append({"failed": str(exc)})
                continue
            runs[name].append(result)
            log(
                f"  {scenario.key} rep {rep + 1} {name:18} {result['rate']:>10.0f} {load.unit:11} "
                f"p50 {result['p50_ms']:7.3f} ms  p99 {result['p99_ms']:8.3f} ms  "
                f"srv {result['server_cpu_pct']:4.0f}%  gen {result['loadgen_cpu_pct']:4.0f}%  "
                f"err {result['errors'] + result['bad_replies'] + result['setup_failures']}"
                + (f"  greet {result['greeting_under_load_ms']:.0f} ms" if result.get("greeting_under_load_ms") else "")
            )
            for line in result["diagnostics"][:2]:
                log(f"      {line}")
    return collect_medians(scenario.key, names, runs, out, median_result)


# ---------------------------------------------------------------------------------- S8: idle capacity


def run_idle(servers: list[str], args, features: dict, workdir: str) -> dict:
    out = {"title": f"idle capacity: {args.idle_connections} connections held", "servers": {}, "skipped": {}}
    names = [name for name in servers if is_daemon(name)] if args.quick else servers
    for name in names:
        try:
            with make_server(name, workdir, f"S8-{name}", features).start(timeout=60) as server:
                out["servers"][name] = idle_capacity(server, args)
            if is_daemon(name):
                note_daemon_log(server, out["servers"][name])
        except StartFailed as exc:
            out["skipped"][name] = f"did not start: {exc}"
            continue
        except RuntimeError as exc:
            out["skipped"][name] = str(exc)
            continue
        r = out["servers"][name]
        log(
            f"  S8 {name:18} held {r['held']:>6}  RSS {r['rss_before_kb']} -> {r['rss_after_kb']} KB "
            f"({r['rss_per_connection_kb']:.1f} KB/conn)  new client greeting max {r['probe_greeting_max_ms']:.1f} ms "
            f"NOOP max {r['probe_noop_max_ms']:.1f} ms"
        )
    for name, why in out["skipped"].items():
        log(f"  S8 {name}: skipped: {why}")
    return out


def idle_capacity(server: Server, args) -> dict:
    warm = LineClient(server.port)  # first connection pays one-off costs: not part of the per-connection RSS
    warm.reply()
    warm.command("NOOP")
    warm.close()
    time.sleep(0.3)
    rss_before = server.rss_kb()
    threads_before = int(server.status()["Threads"].strip())
    cmd = [
        args.loadgen,
        "--host",
        HOST,
        "--port",
        str(server.port),
        "-c",
        str(args.idle_connections),
        "--hold",
        "--connect-burst",
        "256",
        "--setup-timeout",
        "60",
    ]
    started = time.monotonic()
    holder = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = holder.stdout.readline()
        if not line.startswith("{"):
            raise RuntimeError(f"holder failed: {holder.stderr.read()[-300:]}")
        ready = json.loads(line)
        open_s = time.monotonic() - started
        time.sleep(1.0)
        rss_after = server.rss_kb()
        threads_after = int(server.status()["Threads"].strip())
        greet, noop = [], []
        for _ in range(args.idle_probes):
            t0 = time.monotonic()
            try:
                client = LineClient(server.port, timeout=5)
                first = client.reply()
                t1 = time.monotonic()
                reply = client.command("NOOP")
                t2 = time.monotonic()
                client.close()
                ok = first.startswith("220") and reply.startswith("2")
            except OSError:
                ok, t1, t2 = False, t0 + 5, t0 + 5
            greet.append((t1 - t0) * 1000 if ok else float("inf"))
            noop.append((t2 - t1) * 1000 if ok else float("inf"))
            time.sleep(0.05)
        alive = server.process.poll() is None
    finally:
        try:
            holder.stdin.close()
        except OSError:
            pass
        try:
            holder.wait(timeout=60)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
    held = ready["connected"]
    return {
        "held": held,
        "wanted": args.idle_connections,
        "holder_errors": ready["errors"] + ready["setup_failures"],
        "open_s": round(open_s, 2),
        "rss_before_kb": rss_before,
        "rss_after_kb": rss_after,
        "rss_per_connection_kb": (rss_after - rss_before) / held if held else 0.0,
        "threads_before": threads_before,
        "threads_after": threads_after,
        "probe_greeting_max_ms": max(greet),
        "probe_greeting_p50_ms": statistics.median(greet),
        "probe_noop_max_ms": max(noop),
        "server_alive": alive,
    }


# ---------------------------------------------------------------------------------- S10: shared tables


def run_tables(servers: list[str], args) -> dict:
    """S10 (bench/tables_s10.py) on our events engine (guests, then registered players: their durable
    settlement per table) and, when measured, the threads engine (guests)."""
    seconds = 3.0 if args.quick else 10.0
    out: dict = {"title": "20 shared tables x 50 seated, --round-seconds 1", "servers": {}, "skipped": {}, "runs": []}
    plan = [("events", False), ("events", True)]
    if OURS_THREADS in servers:
        plan.append(("threads", False))
    for engine, registered in plan:
        try:
            figures = tables_s10.measure(engine, registered, seconds)
        except RuntimeError as exc:
            log(f"  S10 {engine}: skipped: {exc}")
            continue
        out["runs"].append(figures)
        log(f"  {tables_s10.describe(figures)}")
    return out


# ---------------------------------------------------------------------------------- S9: wrong passwords


class GuestNoopProbe(threading.Thread):
    """One guest connection, opened before the storm: NOOP one at a time during the window, timed.

    Between NOOPs it pauses S9_NOOP_GAP s so that it probes the daemon's responsiveness instead of
    loading it (a few hundred NOOPs/s at most).
    """

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.client = LineClient(port, timeout=30)
        greeting = self.client.reply()
        login = self.client.command("USER guest")
        if not greeting.startswith("220") or not login.startswith("230"):
            self.client.close()
            raise RuntimeError(f"guest probe: greeting {greeting[:60]!r}, USER guest {login[:60]!r}")
        self.go = threading.Event()
        self.halt = threading.Event()
        self.times: list[float] = []
        self.failures: list[str] = []

    def run(self):
        self.go.wait()
        try:
            while not self.halt.is_set():
                started = time.perf_counter()
                try:
                    reply = self.client.command("NOOP")
                except OSError as exc:
                    self.failures.append(f"NOOP failed: {exc}")
                    return
                self.times.append((time.perf_counter() - started) * 1000)
                if not reply.startswith("200"):
                    self.failures.append(f"NOOP answered {reply[:80]!r}")
                self.halt.wait(S9_NOOP_GAP)
        finally:
            self.client.close()


class GoodLoginProbe(threading.Thread):
    """Mid-window: one login with the right password, timed from PASS to 230 (waits in the hash queue)."""

    def __init__(self, port: int, delay: float):
        super().__init__(daemon=True)
        self.port, self.delay = port, delay
        self.ms: float | None = None
        self.failure: str | None = None

    def run(self):
        time.sleep(self.delay)
        try:
            client = LineClient(self.port, timeout=120)
            try:
                client.reply()
                client.command("USER " + READER[0])
                started = time.perf_counter()
                reply = client.command("PASS " + READER[1])
                self.ms = (time.perf_counter() - started) * 1000
                if not reply.startswith("230"):
                    self.failure = f"PASS answered {reply[:80]!r}"
            finally:
                client.close()
        except OSError as exc:
            self.failure = f"login failed: {exc}"


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def scrypt_cost(users_file: str, name: str) -> dict:
    """The cost of `name`'s stored hash, and whether it is the daemon's default cost."""
    cost = {}
    with open(users_file, encoding="utf-8") as file:
        for line in file:
            fields = line.rstrip("\n").split(":", 3)
            if fields[0] == name and len(fields) == 4:
                scheme, n, r, p, *_ = fields[2].split("$") + ["", "", "", ""]
                cost = {"scheme": scheme, "n": int(n or 0), "r": int(r or 0), "p": int(p or 0)}
    try:
        sys.path.insert(0, ROOT)
        from lineproto.domain import accounts

        cost["default"] = (cost.get("n"), cost.get("r"), cost.get("p")) == (
            accounts.SCRYPT_N,
            accounts.SCRYPT_R,
            accounts.SCRYPT_P,
        )
    except Exception:  # the package mid-edit: report the cost only
        cost["default"] = None
    finally:
        sys.path.remove(ROOT)
    return cost


def run_logins(servers: list[str], args, features: dict, workdir: str) -> dict:
    """S9 for every daemon: 200 clients sending wrong passwords; peak RSS, a guest's NOOP latency."""
    out = {"title": f"{S9_CLIENTS} clients sending wrong passwords concurrently", "servers": {}, "skipped": {}}
    daemons = [name for name in servers if is_daemon(name)]
    users, why = make_users_file(workdir)
    if why:
        out["skipped"] = {name: why for name in daemons}
        return out
    out["hash_cost"] = scrypt_cost(users, READER[0])
    script = (f"USER {READER[0]}", f"PASS {S9_WRONG_PASSWORD}") * S9_FAILURES_PER_CONNECTION
    # The C load generator's sessions mode: connect, the 5 USER + PASS pairs (the 5th PASS is the
    # 421 that closes the connection), close, connect again; one request in flight per client.
    load = Load(conns=S9_CLIENTS, workers=1, script=script, sessions=True, allow=(530, 421), unit="wrong PASS/s")
    runs: dict[str, list[dict]] = {name: [] for name in daemons}
    for rep in range(args.repetitions):
        for name in daemons:
            if name in out["skipped"]:
                continue
            try:
                result = login_storm(name, load, args, features, workdir, users, rep)
            except StartFailed as exc:
                out["skipped"][name] = f"did not start: {exc}"
                log(f"  S9 {name}: skipped: did not start: {exc}")
                continue
            except (RuntimeError, OSError) as exc:
                log(f"  S9 {name} rep {rep + 1}: {exc}")
                runs[name].append({"failed": str(exc)})
                continue
            runs[name].append(result)
            log(
                f"  S9 rep {rep + 1} {name:18} {result['attempts_per_s']:>7.1f} wrong PASS/s  "
                f"peak RSS {result['peak_rss_kb'] / 1024:6.1f} MB  NOOP p50 {fmt_opt_ms(result['noop_p50_ms'])} "
                f"p99 {fmt_opt_ms(result['noop_p99_ms'])} max {fmt_opt_ms(result['noop_max_ms'])} ms "
                f"({result['noops']})  good login {fmt_opt_ms(result['good_login_ms'])} ms  "
                f"srv {result['server_cpu_pct']:4.0f}%  err {result['errors']}  stop {result['stop_s']:.1f} s"
            )
            for line in result["diagnostics"][:3]:
                log(f"      {line}")
    return collect_medians("S9", daemons, runs, out, median_logins)


def login_storm(name: str, load: Load, args, features: dict, workdir: str, users: str, rep: int) -> dict:
    server = make_server(name, workdir, f"S9-{name}-{rep}", features, ["--users", users]).start()
    edge: dict = {}
    try:
        guest = GuestNoopProbe(server.port)
        guest.start()
        good = GoodLoginProbe(server.port, args.duration / 2)

        def window_start():
            guest.go.set()
            good.start()

        def window_end():
            guest.halt.set()
            status = server.status()
            edge["rss_kb"] = int(status["VmRSS"].split()[0])
            edge["peak_rss_kb"] = int(status["VmHWM"].split()[0])
            edge["threads"] = int(status["Threads"].strip())

        try:
            result = run_load(server, load, args, workdir, on_window_start=window_start, on_window_end=window_end)
        finally:
            guest.go.set()
            guest.halt.set()
            guest.join(timeout=30)
        # The clients are gone: is the daemon still hashing their passwords?
        cpu0, t0 = server.cpu_seconds(), time.monotonic()
        time.sleep(1.0)
        cpu_after = 100.0 * (server.cpu_seconds() - cpu0) / (time.monotonic() - t0)
        if good.is_alive():
            good.join(timeout=60)
        peak = server.peak_rss_kb()  # lifetime peak, after the queued hashes too
        alive = server.process.poll() is None
    finally:
        server.stop()
    if not alive:
        result["diagnostics"].append(f"server exited: {server.stderr_tail()}")
    note_daemon_log(server, result)
    codes = {int(code): count for code, count in result.get("codes", {}).items()}
    attempts = codes.get(530, 0) + codes.get(421, 0)
    times = guest.times
    result.update(
        {
            "attempts": attempts,
            "attempts_per_s": attempts / args.duration,
            "closed_after_failures": codes.get(421, 0),
            "peak_rss_kb": max(peak, edge.get("peak_rss_kb", 0)),
            "window_peak_rss_kb": edge.get("peak_rss_kb"),
            "window_end_rss_kb": edge.get("rss_kb"),
            "window_end_threads": edge.get("threads"),
            "noops": len(times),
            "noop_p50_ms": percentile(times, 0.50),
            "noop_p99_ms": percentile(times, 0.99),
            "noop_max_ms": max(times) if times else None,
            "noop_failures": guest.failures[:3],
            "good_login_ms": good.ms,
            "good_login_failure": good.failure,
            "cpu_after_clients_left_pct": cpu_after,
            "stop_s": server.stop_seconds or 0.0,
            "server_alive": alive,
        }
    )
    result["errors"] = (
        result["errors"]
        + result["bad_replies"]
        + result["setup_failures"]
        + len(guest.failures)
        + (1 if good.failure else 0)
        + (0 if alive else 1)
    )
    if guest.failures:
        result["diagnostics"].append("guest probe: " + guest.failures[0])
    if good.failure:
        result["diagnostics"].append("good login: " + good.failure)
    return result


def median_logins(runs: list[dict]) -> dict:
    out = {}
    for key in (
        "attempts_per_s",
        "noop_p50_ms",
        "noop_p99_ms",
        "server_cpu_pct",
        "loadgen_cpu_pct",
        "cpu_after_clients_left_pct",
        "stop_s",
        "good_login_ms",
        "window_end_rss_kb",
    ):
        values = [run[key] for run in runs if run.get(key) is not None]
        out[key] = statistics.median(values) if values else None
    for key in ("peak_rss_kb", "noop_max_ms", "window_end_threads"):  # worst of the repetitions
        values = [run[key] for run in runs if run.get(key) is not None]
        out[key] = max(values) if values else None
    for key in ("attempts", "closed_after_failures", "noops", "errors"):
        out[key] = sum(run[key] for run in runs)
    out["repetitions"] = len(runs)
    return out


def fmt_opt_ms(value: float | None) -> str:
    return fmt_ms(value) if value is not None else "-"


# ---------------------------------------------------------------------------------- report


def fmt_rate(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 10_000 else f"{value:.0f}"


def fmt_ms(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def fmt_ratio(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "-"


def table(results: dict) -> str:
    rows = [
        "| scenario | server | rate | p50 ms | p99 ms | server CPU | loadgen CPU | cs/reply | new client ms "
        "| errors | vs ours |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, scenario in results["scenarios"].items():
        if key in ("S8", "S9", "S10"):
            continue
        ours = scenario["servers"].get(OURS, {}).get("median", {}).get("rate")
        first = True
        for name, data in scenario["servers"].items():
            m = data["median"]
            label = f"{key} {m['unit']}" if first else ""
            first = False
            errors = m["errors"] + m["bad_replies"] + m["setup_failures"]
            cs = m.get("ctx_switches_per_reply")
            greet = m.get("greeting_under_load_ms")
            rows.append(
                f"| {label} | {name} | {fmt_rate(m['rate'])} | {fmt_ms(m['p50_ms'])} | {fmt_ms(m['p99_ms'])} "
                f"| {m['server_cpu_pct']:.0f}% | {m['loadgen_cpu_pct']:.0f}% "
                f"| {f'{cs:.1f}' if cs is not None else '-'} | {fmt_ms(greet) if greet is not None else '-'} "
                f"| {errors} "
                f"| {fmt_ratio(ratio(m['rate'], ours))} |"
            )
        for name, why in scenario["skipped"].items():
            label = key if first else ""
            first = False
            rows.append(f"| {label} | {name} | skipped: {why} | | | | | | | | |")
    return "\n".join(rows)


#: Columns of the ratio table: (heading, server) — ours over each peer.
RATIO_PEERS = (
    ("bare loop", BARE),
    ("asyncio Protocol", PROTOCOL_MARK),
    ("asyncio streams", "asyncio-streams"),
    ("pyftpdlib", "pyftpdlib"),
    ("Twisted", "twisted"),
)


def summary_table(results: dict) -> str:
    """One row per scenario and daemon (default, uvloop, threads, variants): its rate over each peer's."""
    rows = [
        "| scenario | server | rate | vs lineproto | "
        + " | ".join(f"/ {h}" for h, _ in RATIO_PEERS)
        + " | / baseline | fastest (loadgen headroom) |",
        "| --- | --- | ---: | ---: | " + " | ".join("---:" for _ in RATIO_PEERS) + " | ---: | --- |",
    ]
    for key, scenario in results["scenarios"].items():
        if key in ("S8", "S9", "S10"):
            continue
        servers = scenario["servers"]
        rate = {name: data["median"]["rate"] for name, data in servers.items()}
        daemons = [name for name in list(servers) + list(scenario["skipped"]) if is_daemon(name)]
        if not daemons:
            continue
        best = max(rate, key=rate.get) if rate else None
        if key == "S6":
            baseline = (S6_OLD_ROUNDS_PER_S, f"old {S6_OLD_ROUNDS_PER_S}")
        elif key == "S7":
            baseline = (rate.get(XMLRPC.name), XMLRPC.name)
        else:
            baseline = (None, "")
        first = True
        for name in daemons:
            label = key if first else ""
            first = False
            if name not in rate:
                rows.append(f"| {label} | {name} | skipped | | " + " | ".join("" for _ in RATIO_PEERS) + " | | |")
                continue
            mine = rate[name]
            cells = [fmt_ratio(ratio(mine, rate.get(peer))) for _, peer in RATIO_PEERS]
            base = fmt_ratio(ratio(mine, baseline[0]))
            base = f"{base} ({baseline[1]})" if baseline[0] else base
            headroom = f"{best} {fmt_rate(rate[best])}" if name == daemons[0] and best else ""
            rows.append(
                f"| {label} | {name} | {fmt_rate(mine)} {servers[name]['median']['unit']} "
                f"| {fmt_ratio(ratio(mine, rate.get(OURS)))} | " + " | ".join(cells) + f" | {base} | {headroom} |"
            )
    return "\n".join(rows)


def idle_table(results: dict) -> str:
    s8 = results["scenarios"].get("S8")
    if not s8:
        return ""
    rows = [
        "| server | held | RSS before | RSS after | per connection | threads "
        "| new client greeting (max) | NOOP (max) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in s8["servers"].items():
        rows.append(
            f"| {name} | {r['held']} / {r['wanted']} | {r['rss_before_kb'] / 1024:.1f} MB "
            f"| {r['rss_after_kb'] / 1024:.1f} MB | {r['rss_per_connection_kb']:.1f} KB "
            f"| {r['threads_after']} | {fmt_ms(r['probe_greeting_max_ms'])} ms | {fmt_ms(r['probe_noop_max_ms'])} ms |"
        )
    for name, why in s8["skipped"].items():
        rows.append(f"| {name} | skipped: {why} | | | | | | |")
    return "\n".join(rows)


def login_table(results: dict) -> str:
    s9 = results["scenarios"].get("S9")
    if not s9:
        return ""
    rows = [
        "| server | wrong PASS/s | closed (421) | peak RSS | RSS at window end | threads | guest NOOP p50 ms "
        "| p99 ms | max ms | NOOPs | good login ms | server CPU | CPU after clients left | stop s | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, data in s9["servers"].items():
        m = data["median"]
        end_rss = m.get("window_end_rss_kb")
        rows.append(
            f"| {name} | {m['attempts_per_s']:.1f} | {m['closed_after_failures']} "
            f"| {m['peak_rss_kb'] / 1024:.1f} MB | {f'{end_rss / 1024:.1f} MB' if end_rss else '-'} "
            f"| {m.get('window_end_threads') or '-'} | {fmt_opt_ms(m['noop_p50_ms'])} "
            f"| {fmt_opt_ms(m['noop_p99_ms'])} | {fmt_opt_ms(m['noop_max_ms'])} | {m['noops']} "
            f"| {fmt_opt_ms(m['good_login_ms'])} | {m['server_cpu_pct']:.0f}% "
            f"| {m['cpu_after_clients_left_pct']:.0f}% | {m['stop_s']:.1f} | {m['errors']} |"
        )
    for name, why in s9["skipped"].items():
        rows.append(f"| {name} | skipped: {why} |" + " |" * 14)
    return "\n".join(rows)


def targets(results: dict) -> list[dict]:
    """The targets (the default engine, `lineproto`, against the peers of the same run), each with
    met / not met / not measured and the numbers."""
    sc = results["scenarios"]
    out = []

    def median(key, name):
        return sc.get(key, {}).get("servers", {}).get(name, {}).get("median")

    def rate(key, name):
        return (median(key, name) or {}).get("rate")

    def why_not(key, *names):
        if key not in sc:
            return "not run (--scenarios)"
        skipped = sc.get(key, {}).get("skipped", {})
        for name in names:
            if name in skipped:
                return f"not measured: {name}: {skipped[name]}"
        return "not measured"

    def add(target, met, detail):
        out.append({"target": target, "met": met, "detail": detail})

    def ahead(key, name, peer, factor=None):
        mine, other = rate(key, name), rate(key, peer)
        target = f"{key}: {name} {f'>= {factor:g}x' if factor else '>'} {peer}"
        if mine is None or other is None:
            add(target, None, why_not(key, name, peer))
        else:
            met = mine >= factor * other if factor else mine > other
            add(target, met, f"{mine / other:.2f}x ({fmt_rate(mine)} vs {fmt_rate(other)})")

    ahead("S1", OURS, "pyftpdlib")
    for key in ("S2", "S3", "S4", "S5"):
        for peer in ("pyftpdlib", "twisted", "asyncio-streams"):
            ahead(key, OURS, peer)
    for key, factor in (("S2", 0.8), ("S3", 0.3), ("S4", 0.8)):
        ahead(key, OURS, PROTOCOL_MARK, factor)
    s4 = median("S4", OURS)
    if s4:
        errors = s4["errors"] + s4["bad_replies"] + s4["setup_failures"]
        add(f"S4: {OURS} p99 < 50 ms", s4["p99_ms"] < 50, f"p99 {fmt_ms(s4['p99_ms'])} ms")
        add(f"S4: {OURS} no errors", errors == 0, f"{errors} errors")
        greet = s4.get("greeting_under_load_ms")
        add(
            f"S4: a new client greeted < 10 ms ({OURS} under load)",
            None if greet is None else greet < 10,
            f"worst {fmt_ms(greet)} ms of {sc['S4']['servers'][OURS]['median']['repetitions'] * 5} clients"
            if greet is not None
            else "not measured",
        )
    else:
        add(f"S4: {OURS} p99 < 50 ms, no errors, new client greeted < 10 ms", None, why_not("S4", OURS))
    s8 = sc.get("S8", {}).get("servers", {}).get(OURS)
    if s8:
        add(
            f"S8: {OURS} holds {S8_CONNECTIONS:,} idle connections",
            None if s8["wanted"] < S8_CONNECTIONS else s8["held"] >= S8_CONNECTIONS and s8["holder_errors"] == 0,
            f"{s8['held']} of {s8['wanted']} held, {s8['holder_errors']} errors",
        )
        add(
            f"S8: {OURS} < 3 KB RSS per idle connection",
            s8["rss_per_connection_kb"] < 3,
            f"{s8['rss_per_connection_kb']:.1f} KB",
        )
    else:
        add(f"S8: {OURS} {S8_CONNECTIONS:,} idle connections at < 3 KB each", None, why_not("S8", OURS))
    for plain, labelled in (("S6", "S6L"), ("S7", "S7L")):
        target = f"{labelled}: labels cost {OURS} at most 30% of {plain} (same run)"
        base, with_labels = rate(plain, OURS), rate(labelled, OURS)
        if base is None or with_labels is None:
            add(target, None, why_not(labelled, OURS))
        else:
            add(
                target,
                with_labels >= 0.7 * base,
                f"{with_labels / base:.2f}x ({fmt_rate(with_labels)} vs {fmt_rate(base)})",
            )
    s6 = rate("S6", OURS)
    if s6 is None:
        add(f"S6: {OURS} >= 3x the old {S6_OLD_ROUNDS_PER_S} rounds/s", None, why_not("S6", OURS))
    else:
        add(
            f"S6: {OURS} >= 3x the old {S6_OLD_ROUNDS_PER_S} rounds/s",
            s6 >= 3 * S6_OLD_ROUNDS_PER_S,
            f"{s6 / S6_OLD_ROUNDS_PER_S:.2f}x ({fmt_rate(s6)} rounds/s)",
        )
    ours7, xml7 = rate("S7", OURS), rate("S7", XMLRPC.name)
    if ours7 is None or xml7 is None:
        add(f"S7: {OURS} >= 10x xmlrpc meter server (durable)", None, why_not("S7", OURS, XMLRPC.name))
    else:
        add(
            f"S7: {OURS} >= 10x xmlrpc meter server (durable)",
            ours7 >= 10 * xml7,
            f"{ours7 / xml7:.1f}x ({fmt_rate(ours7)} vs {fmt_rate(xml7)} readings/s)",
        )
    for key in ("S2", "S4"):
        if key in sc:
            ahead(key, OURS_UVLOOP, PROTOCOL_MARK)
    s9 = sc.get("S9", {}).get("servers", {}).get(OURS, {}).get("median")
    if s9:
        add(f"S9: {OURS} peak RSS < 300 MB", s9["peak_rss_kb"] < 300 * 1024, f"VmHWM {s9['peak_rss_kb'] / 1024:.1f} MB")
        p99 = s9["noop_p99_ms"]
        add(
            f"S9: {OURS} guest NOOP p99 < 20 ms",
            None if p99 is None else p99 < 20,
            f"p99 {fmt_opt_ms(p99)} ms, max {fmt_opt_ms(s9['noop_max_ms'])} ms over {s9['noops']} NOOPs; "
            f"{s9['attempts_per_s']:.1f} wrong PASS/s",
        )
    elif "S9" in sc:
        add(f"S9: {OURS} peak RSS < 300 MB, guest NOOP p99 < 20 ms", None, why_not("S9", OURS))
    s10 = [run for run in sc.get("S10", {}).get("runs", []) if run["engine"] == "events" and run["p99_ms"] is not None]
    if s10:
        worst = max(run["p99_ms"] for run in s10)
        errors = sum(run["errors"] for run in s10)
        add(
            f"S10: {OURS} result event p99 < 50 ms after the spin, no errors (20 tables x 50 seated)",
            worst < 50 and errors == 0,
            "; ".join(f"{run['players']} p99 {run['p99_ms']:.1f} ms" for run in s10) + f"; {errors} errors",
        )
    elif "S10" in sc:
        add(f"S10: {OURS} result event p99 < 50 ms after the spin", None, "not run")
    # the threads engine: no target beyond being measured beside the default
    ran = [key for key, scenario in sc.items() if OURS in scenario.get("servers", {})]
    if ran:
        missing = [key for key in ran if OURS_THREADS not in sc[key].get("servers", {})]
        add(
            f"{OURS_THREADS} reported beside {OURS}",
            not missing,
            f"in {', '.join(k for k in ran if k not in missing)}"
            + (f"; missing in {', '.join(missing)}" if missing else ""),
        )
    return out


def daemon_log_summary(results: dict) -> list[str]:
    """One line per scenario and daemon whose log had warnings or errors: how many, the first."""
    lines = []
    for key, scenario in results["scenarios"].items():
        for name, data in scenario.get("servers", {}).items():
            runs = data.get("runs", [data])
            count = sum(run.get("server_log_problems", 0) for run in runs)
            if count:
                first = next(line for run in runs for line in run.get("server_log", []))
                lines.append(f"- {key} {name}: {count} warning/error lines, e.g. `{first[:160]}`")
    return lines


def targets_table(items: list[dict]) -> str:
    rows = ["| target | met | measured |", "| --- | --- | --- |"]
    for item in items:
        met = {True: "yes", False: "**no**", None: "not measured"}[item["met"]]
        rows.append(f"| {item['target']} | {met} | {item['detail']} |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------- main


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 repetition, 2 s windows (development)")
    parser.add_argument("--repetitions", type=int)
    parser.add_argument("--duration", type=float, help="seconds of the timed window")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up before the window")
    parser.add_argument(
        "--scenarios", default="S1,S2,S3,S4,S5,S6,S6L,S7,S7L,S8,S9,S10", help="comma-separated, e.g. S1,S3"
    )
    parser.add_argument(
        "--servers",
        default=",".join(s.name for s in PEERS),
        help="comma-separated (default: all: " + ", ".join(s.name for s in PEERS) + ")",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="load generator processes for multi-connection scenarios"
    )
    parser.add_argument("--idle-connections", type=int, default=S8_CONNECTIONS)
    parser.add_argument("--idle-probes", type=int, default=20)
    parser.add_argument("--loadgen", default=DEFAULT_LOADGEN)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also measure the daemon of the repository copy DIR as server NAME (experiments; "
        "with lineproto's engine options when its daemon.py has --engine and --loop)",
    )
    parser.add_argument("--output", default=os.path.join(RESULTS_DIR, "latest.json"))
    args = parser.parse_args(argv)
    args.repetitions = args.repetitions or (1 if args.quick else 3)
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else 1.0
    if not os.access(args.loadgen, os.X_OK):
        log(f"bench: no load generator at {args.loadgen}: build it with `make bench` (cc bench/loadgen.c)")
        return 2
    fd_limit = raise_fd_limit()  # children (servers, loadgen) inherit it
    if fd_limit < args.idle_connections + 1000:
        log(
            f"bench: the fd limit is {fd_limit}: S8 opens {args.idle_connections} connections "
            f"(raise the hard limit: ulimit -Hn)"
        )
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    known = {spec.name for spec in PEERS}
    unknown = [name for name in wanted if name not in known]
    if unknown:
        parser.error(f"unknown server {unknown[0]!r}: one of {', '.join(s.name for s in PEERS)}")
    for item in args.variant:
        name, _, directory = item.partition("=")
        if not name or name in known or not os.path.isfile(os.path.join(directory, "daemon.py")):
            parser.error(f"--variant {item}: want NAME=DIR with DIR/daemon.py (NAME not a server's name)")
        VARIANTS[name] = os.path.abspath(directory)
        variant_help = daemon_help(VARIANTS[name])
        if has_option(variant_help, "--engine") and has_option(variant_help, "--loop"):
            VARIANT_ENGINES[name] = list(DAEMON_ENGINES[OURS])
    help_text = daemon_help()
    features = {
        "db": has_option(help_text, "--db"),
        "db_sync": has_option(help_text, "--db-sync"),
        "engine": has_option(help_text, "--engine") and has_option(help_text, "--loop"),
    }
    servers = []
    skipped_servers = {}
    for spec in PEERS:
        if spec.name not in wanted:
            continue
        why = spec.available()
        if spec.name in (OURS_UVLOOP, OURS_THREADS) and not features["engine"]:
            why = "the daemon has no --engine / --loop options"
        if why:
            log(f"bench: skipping {spec.name}: {why}")
            skipped_servers[spec.name] = why
            continue
        servers.append(spec.name)
    # the variants go right after our daemons (first if none of ours is measured)
    last = max((index for index, name in enumerate(servers) if is_daemon(name)), default=-1)
    servers[last + 1 : last + 1] = list(VARIANTS)
    keys = [k.strip().upper() for k in args.scenarios.split(",") if k.strip()]
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="run-", dir=_tmp_root())
    results = {
        "mode": "quick" if args.quick else "full",
        "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + (argv if argv is not None else sys.argv[1:])),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu": _cpu_model(),
            "fd_limit": fd_limit,
        },
        "config": {
            "repetitions": args.repetitions,
            "warmup_s": args.warmup,
            "window_s": args.duration,
            "loadgen_workers": args.workers,
            "idle_connections": args.idle_connections,
            "idle_probes": args.idle_probes,
            "daemon_features": features,
            "servers": servers,
            "skipped_servers": skipped_servers,
            "daemon_engines": {name: engine_args(name, features) for name in servers if is_daemon(name)},
            "s9": {
                "clients": S9_CLIENTS,
                "failures_per_connection": S9_FAILURES_PER_CONNECTION,
                "noop_gap_s": S9_NOOP_GAP,
            },
            "s6_old_rounds_per_s": S6_OLD_ROUNDS_PER_S,
        },
        "scenarios": {},
    }
    log(
        f"bench: {results['mode']} mode: {args.repetitions} repetition(s), {args.warmup:g} s warm-up, "
        f"{args.duration:g} s window; servers: {', '.join(servers)}"
    )
    try:
        for scenario in scenarios(args):
            if scenario.key not in keys:
                continue
            log(f"{scenario.key}: {scenario.title}")
            results["scenarios"][scenario.key] = run_scenario(scenario, servers, args, features, workdir)
            note_skipped(results["scenarios"][scenario.key], skipped_servers, peers=not scenario.daemons_only)
        if "S8" in keys:
            log(f"S8: {args.idle_connections} idle connections")
            results["scenarios"]["S8"] = run_idle(servers, args, features, workdir)
            note_skipped(results["scenarios"]["S8"], skipped_servers, peers=not args.quick)
        if "S9" in keys:
            log(f"S9: {S9_CLIENTS} clients sending wrong passwords, a guest's NOOPs timed")
            results["scenarios"]["S9"] = run_logins(servers, args, features, workdir)
            note_skipped(results["scenarios"]["S9"], skipped_servers, peers=False)
        if "S10" in keys:
            log("S10: 20 shared tables x 50 seated players, --round-seconds 1, every player betting each round")
            results["scenarios"]["S10"] = run_tables(servers, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["targets"] = targets(results)
    with open(args.output, "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2)
    print()
    print(
        f"lineproto benchmark, {results['mode']} mode ({args.repetitions} repetition(s) x {args.duration:g} s "
        f"after {args.warmup:g} s warm-up, medians); {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    if any(key not in ("S8", "S9", "S10") for key in results["scenarios"]):
        print()
        print(table(results))
        print()
        print(summary_table(results))
    idle = idle_table(results)
    if idle:
        print()
        print(f"S8: {args.idle_connections} idle connections")
        print()
        print(idle)
    logins = login_table(results)
    if logins:
        print()
        s9 = results["scenarios"]["S9"]
        cost = s9.get("hash_cost", {})
        print(
            f"S9: {S9_CLIENTS} clients sending USER {READER[0]} + PASS {S9_WRONG_PASSWORD} "
            f"(scrypt n={cost.get('n')} r={cost.get('r')} p={cost.get('p')}"
            f"{', the default cost' if cost.get('default') else ''}; 421 and reconnect after "
            f"{S9_FAILURES_PER_CONNECTION} failures); one guest connection's NOOPs timed, one at a time"
        )
        print()
        print(logins)
    for figures in results["scenarios"].get("S10", {}).get("runs", []):
        print()
        print(tables_s10.describe(figures))
    problems = daemon_log_summary(results)
    if problems:
        print()
        print("Daemon log (warnings and errors while measured):")
        print()
        print("\n".join(problems))
    print()
    print(targets_table(results["targets"]))
    print()
    print(f"written: {os.path.relpath(args.output, ROOT)}")
    return 0


def note_skipped(scenario: dict, skipped_servers: dict[str, str], peers: bool) -> None:
    """Servers asked for but not runnable (uvloop or a peer not installed): listed as skipped, with why."""
    for name, why in skipped_servers.items():
        if name in DAEMON_ENGINES or peers:
            scenario["skipped"].setdefault(name, why)


def _tmp_root() -> str:
    """Scratch space on the repository's file system (not tmpfs), so SQLite's fsync is real."""
    path = os.path.join(ROOT, "build", "bench", "tmp")
    os.makedirs(path, exist_ok=True)
    return path


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
