#!/usr/bin/env python3
"""Benchmark lineproto against peer servers in one run (issue 6): `make bench`.

Every server is started the same way (`--port 0 --notify FILE`, waited for by its notify file,
never by a sleep), on 127.0.0.1 only, driven by the same C load generator (bench/loadgen.c) and
stopped again; the server's CPU time is read from /proc/<pid>/stat at the edges of the timed
window. Each scenario runs its repetitions interleaved over the servers and reports medians.

    python3 bench/run.py                 # full: 1 s warm-up, 5 s window, 3 repetitions
    python3 bench/run.py --quick         # development: 1 repetition, 2 s windows
    python3 bench/run.py --scenarios S2,S4 --servers lineproto,bare-socketserver

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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SERVERS_DIR = os.path.join(HERE, "servers")
DEFAULT_LOADGEN = os.path.join(ROOT, "build", "bench", "loadgen")
RESULTS_DIR = os.path.join(HERE, "results")
HOST = "127.0.0.1"  # never anything else
OURS = "lineproto"
PROTOCOL_MARK = "asyncio-protocol"
BARE = "bare-socketserver"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
READER = ("benchreader", "bench reader password")
S8_CONNECTIONS = 10_000


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
            return f"{self.needs} is not installed (the bench extras could not be installed)"
        return None


PEERS = [
    ServerSpec(OURS, None, label="lineproto daemon (ThreadingTCPServer)"),
    ServerSpec(BARE, "bare_socketserver.py", label="bare socketserver NOOP loop"),
    ServerSpec("asyncio-streams", "asyncio_streams.py", label="asyncio start_server"),
    ServerSpec(PROTOCOL_MARK, "asyncio_protocol.py", label="asyncio Protocol"),
    ServerSpec("pyftpdlib", "pyftpdlib_ftp.py", needs="pyftpdlib", label="pyftpdlib FTP"),
    ServerSpec("twisted", "twisted_lines.py", needs="twisted", label="Twisted LineOnlyReceiver"),
]
XMLRPC = ServerSpec("xmlrpc-meter", "xmlrpc_meter.py", label="stdlib xmlrpc.server meter service")


def daemon_help() -> str:
    result = subprocess.run([sys.executable, "daemon.py", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    return result.stdout + result.stderr


def has_option(help_text: str, option: str) -> bool:
    """Whether `daemon.py --help` lists `option` (not merely a longer option starting with it)."""
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", help_text) is not None


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

    def start(self, timeout: float = 30.0) -> "Server":
        notify = os.path.join(self.workdir, f"{self.name}.notify")
        if os.path.exists(notify):
            os.unlink(notify)
        argv = self.argv + ["--notify", notify]
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen(argv, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=stderr)
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
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

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
    if not reply[:3] in codes:
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

    def command(self, loadgen: str, port: int, warmup: float, duration: float) -> list[str]:
        if self.argv is not None:
            return self.argv + ["--warmup", str(warmup), "--duration", str(duration)]
        argv = [loadgen, "--host", HOST, "--port", str(port), "-c", str(self.conns), "-k", str(self.inflight),
                "-w", str(self.workers), "--warmup", str(warmup), "--duration", str(duration)]
        for cmd in self.script:
            argv += ["--cmd", cmd]
        for cmd in self.setup:
            argv += ["--setup", cmd]
        if self.sessions:
            argv.append("--sessions")
        if self.reset_every:
            argv += ["--reset-every", str(self.reset_every)]
        return argv + ["--ack"]


class GreetingProbe(threading.Thread):
    """During the window: `count` new clients, evenly spaced, each timed from connect to greeting."""

    def __init__(self, port: int, count: int, window: float):
        super().__init__(daemon=True)
        self.port, self.count, self.window = port, count, window
        self.times: list[float] = []

    def run(self):
        for index in range(self.count):
            time.sleep(self.window / (self.count + 1))
            started = time.monotonic()
            try:
                client = LineClient(self.port, timeout=10)
                ok = client.reply().startswith("220")
                client.close()
            except OSError:
                ok = False
            self.times.append((time.monotonic() - started) * 1000 if ok else float("inf"))


def run_load(server: Server, load: Load, args, workdir: str, on_window_start=None) -> dict:
    """Drive `server` with `load`; the loadgen's figures plus the server's CPU in the window."""
    argv = load.command(args.loadgen, server.port, args.warmup, args.duration)
    stderr_path = os.path.join(workdir, "loadgen.stderr")
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                   cwd=ROOT)
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
    servers: list[str] | None = None  # None: every peer
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
        Scenario("S5", "connect + greeting + USER guest + QUIT, 50 concurrent clients", s5,
                 loads={"pyftpdlib": Load(conns=50, workers=w, script=("USER anonymous", "QUIT"), sessions=True,
                                          unit="sessions/s")},
                 note="pyftpdlib logs in with USER anonymous (331)"),
        Scenario("S6", "BET RED 1 + SPIN rounds on 50 guest connections",
                 Load(conns=50, workers=w, setup=("USER guest",), script=("BET RED 1", "SPIN"),
                      reset_every=40, unit="rounds/s"),
                 servers=[OURS],
                 note="USER guest again every 40 rounds (a fresh 100-chip table), not counted"),
        Scenario("S7", "durable JOB + READ on 50 reader connections (SQLite)",
                 Load(conns=50, workers=w, setup=("USER " + READER[0], "PASS " + READER[1]),
                      script=("JOB", "READ $W 42"), unit="readings/s"),
                 servers=[OURS, XMLRPC.name]),
    ]


def daemon_argv(workdir: str, tag: str, features: dict, extra: list[str] = ()) -> list[str]:
    argv = [sys.executable, "daemon.py", "--host", HOST, "--port", "0", "--log-level", "warning",
            "--max-connections", "20000"]
    if features["db"]:
        argv += ["--db", os.path.join(workdir, f"{tag}.db")]
    return argv + list(extra)


#: Extra daemons to measure side by side with ours: name -> repository root (--variant NAME=DIR),
#: e.g. a patched copy of the package outside the repository.
VARIANTS: dict[str, str] = {}


def is_daemon(name: str) -> bool:
    return name == OURS or name in VARIANTS


def make_server(name: str, workdir: str, tag: str, features: dict, extra: list[str] = ()) -> Server:
    if name == OURS:
        return Server(name, daemon_argv(workdir, tag, features, extra), workdir)
    if name in VARIANTS:
        return Server(name, daemon_argv(workdir, tag, features, extra), workdir, cwd=VARIANTS[name])
    spec = next(s for s in PEERS + [XMLRPC] if s.name == name)
    return Server(name, [sys.executable, os.path.join(SERVERS_DIR, spec.script), "--host", HOST, "--port", "0"]
                  + list(extra), workdir)


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
        return (expect(client, "USER guest", ("230",)) or expect(client, "BET RED 1", ("200",))
                or expect(client, "SPIN", ("250",)))
    finally:
        client.close()


def probe_meters(port: int) -> str | None:
    client = LineClient(port, timeout=30)
    try:
        client.reply()
        return (expect(client, "USER " + READER[0], ("331",)) or expect(client, "PASS " + READER[1], ("230",))
                or expect(client, "JOB", ("250",)) or _probe_read(client))
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
    result = subprocess.run([sys.executable, "daemon.py", "useradd", READER[0], "--name", "Bench Reader",
                             "--role", "reader", "--password-stdin", "--users", path],
                            cwd=ROOT, input=READER[1] + "\n", capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not os.path.exists(path):
        why = (result.stderr or result.stdout).strip().splitlines()
        return None, f"useradd failed: {why[-1] if why else result.returncode}"
    return path, None


def run_scenario(scenario: Scenario, servers: list[str], args, features: dict, workdir: str) -> dict:
    """Repetitions interleaved over the servers; returns the scenario's JSON."""
    names = [name for name in (scenario.servers or servers) if name in servers or name == XMLRPC.name]
    if scenario.servers:  # daemon-only scenarios measure the variants too
        names[1:1] = [name for name in servers if name in VARIANTS]
    out = {"title": scenario.title, "note": scenario.note, "servers": {}, "skipped": {}}
    extra: dict[str, list[str]] = {}
    loads: dict[str, Load] = {}
    for name in names:
        loads[name] = scenario.loads.get(name, scenario.load)
    if scenario.key == "S7":
        users, why = make_users_file(workdir)
        if why:
            out["skipped"][OURS] = why
        else:
            extra[OURS] = ["--users", users]
        if not features["db"]:
            out["skipped"][OURS] = "the daemon has no --db option (the SQLite store has not landed)"
        elif features["db_sync"]:
            extra.setdefault(OURS, []).extend(["--db-sync", "full"])
        for name in VARIANTS:
            extra[name] = extra.get(OURS, [])
        xmlrpc_db = os.path.join(workdir, "xmlrpc.db")
        extra[XMLRPC.name] = ["--db", xmlrpc_db, "--sync", "full", "--user", f"{READER[0]}:{READER[1]}"]
    # feature probes, once per scenario
    if scenario.key in ("S6", "S7") and OURS in names and OURS not in out["skipped"]:
        try:
            with make_server(OURS, workdir, f"{scenario.key}-probe", features, extra.get(OURS, [])).start() as server:
                why = probe_roulette(server.port) if scenario.key == "S6" else probe_meters(server.port)
        except (StartFailed, OSError) as exc:
            why = f"the daemon did not start: {exc}"
        if why:
            out["skipped"][OURS] = why
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for rep in range(args.repetitions):
        for name in names:
            if name in out["skipped"] or (name in VARIANTS and OURS in out["skipped"]):
                continue
            tag = f"{scenario.key}-{name}-{rep}"
            load = loads[name]
            if name == XMLRPC.name:
                load = Load(unit="readings/s", argv=[sys.executable, os.path.join(HERE, "xmlrpc_load.py"),
                                                     "--url", "", "--threads", "50", "--procs", str(args.workers),
                                                     "--user", READER[0], "--password", READER[1]])
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
            except StartFailed as exc:
                out["skipped"][name] = f"did not start: {exc}"
                log(f"  {scenario.key} {name}: skipped: did not start: {exc}")
                continue
            except RuntimeError as exc:
                log(f"  {scenario.key} {name} rep {rep + 1}: {exc}")
                runs[name].append({"failed": str(exc)})
                continue
            runs[name].append(result)
            log(f"  {scenario.key} rep {rep + 1} {name:18} {result['rate']:>10.0f} {load.unit:11} "
                f"p50 {result['p50_ms']:7.3f} ms  p99 {result['p99_ms']:8.3f} ms  "
                f"srv {result['server_cpu_pct']:4.0f}%  gen {result['loadgen_cpu_pct']:4.0f}%  "
                f"err {result['errors'] + result['bad_replies'] + result['setup_failures']}"
                + (f"  greet {result['greeting_under_load_ms']:.0f} ms" if result.get("greeting_under_load_ms") else ""))
            for line in result["diagnostics"][:2]:
                log(f"      {line}")
    for name in names:
        good = [run for run in runs[name] if "failed" not in run]
        if good:
            out["servers"][name] = {"median": median_result(good), "runs": good,
                                    "failed_runs": [run["failed"] for run in runs[name] if "failed" in run]}
        elif runs[name] and name not in out["skipped"]:
            out["skipped"][name] = "every repetition failed: " + runs[name][0]["failed"]
    for name, why in out["skipped"].items():
        log(f"  {scenario.key} {name}: skipped: {why}")
    return out


# ---------------------------------------------------------------------------------- S8: idle capacity


def run_idle(servers: list[str], args, features: dict, workdir: str) -> dict:
    out = {"title": f"idle capacity: {args.idle_connections} connections held", "servers": {}, "skipped": {}}
    names = [OURS] + list(VARIANTS) if args.quick else servers
    for name in names:
        if name not in servers:
            continue
        try:
            with make_server(name, workdir, f"S8-{name}", features).start(timeout=60) as server:
                out["servers"][name] = idle_capacity(server, args)
        except StartFailed as exc:
            out["skipped"][name] = f"did not start: {exc}"
            continue
        except RuntimeError as exc:
            out["skipped"][name] = str(exc)
            continue
        r = out["servers"][name]
        log(f"  S8 {name:18} held {r['held']:>6}  RSS {r['rss_before_kb']} -> {r['rss_after_kb']} KB "
            f"({r['rss_per_connection_kb']:.1f} KB/conn)  new client greeting max {r['probe_greeting_max_ms']:.1f} ms "
            f"NOOP max {r['probe_noop_max_ms']:.1f} ms")
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
    cmd = [args.loadgen, "--host", HOST, "--port", str(server.port), "-c", str(args.idle_connections), "--hold",
           "--connect-burst", "256", "--setup-timeout", "60"]
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
        "held": held, "wanted": args.idle_connections, "holder_errors": ready["errors"] + ready["setup_failures"],
        "open_s": round(open_s, 2), "rss_before_kb": rss_before, "rss_after_kb": rss_after,
        "rss_per_connection_kb": (rss_after - rss_before) / held if held else 0.0,
        "threads_before": threads_before, "threads_after": threads_after,
        "probe_greeting_max_ms": max(greet), "probe_greeting_p50_ms": statistics.median(greet),
        "probe_noop_max_ms": max(noop), "server_alive": alive,
    }


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
    rows = ["| scenario | server | rate | p50 ms | p99 ms | server CPU | loadgen CPU | cs/reply | new client ms "
            "| errors | vs ours |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for key, scenario in results["scenarios"].items():
        if key == "S8":
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
            rows.append(f"| {label} | {name} | {fmt_rate(m['rate'])} | {fmt_ms(m['p50_ms'])} | {fmt_ms(m['p99_ms'])} "
                        f"| {m['server_cpu_pct']:.0f}% | {m['loadgen_cpu_pct']:.0f}% "
                        f"| {f'{cs:.1f}' if cs is not None else '-'} | {fmt_ms(greet) if greet is not None else '-'} "
                        f"| {errors} "
                        f"| {fmt_ratio(ratio(m['rate'], ours))} |")
        for name, why in scenario["skipped"].items():
            label = key if first else ""
            first = False
            rows.append(f"| {label} | {name} | skipped: {why} | | | | | | | | |")
    return "\n".join(rows)


def summary_table(results: dict) -> str:
    rows = ["| scenario | ours | ours / bare loop | ours / asyncio Protocol | ours / asyncio streams "
            "| ours / pyftpdlib | ours / Twisted | loadgen headroom |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for key, scenario in results["scenarios"].items():
        if key == "S8" or key == "S7":
            continue
        servers = scenario["servers"]
        rate = {name: data["median"]["rate"] for name, data in servers.items()}
        ours = rate.get(OURS)
        if ours is None:
            rows.append(f"| {key} | skipped | | | | | | |")
            continue
        best = max(rate, key=rate.get)
        headroom = f"fastest: {best} {fmt_rate(rate[best])}" + (" (ours)" if best == OURS else "")
        cells = [fmt_ratio(ratio(ours, rate.get(n))) for n in (BARE, PROTOCOL_MARK, "asyncio-streams", "pyftpdlib",
                                                               "twisted")]
        rows.append(f"| {key} | {fmt_rate(ours)} {servers[OURS]['median']['unit']} | " + " | ".join(cells)
                    + f" | {headroom} |")
    return "\n".join(rows)


def idle_table(results: dict) -> str:
    s8 = results["scenarios"].get("S8")
    if not s8:
        return ""
    rows = ["| server | held | RSS before | RSS after | per connection | threads | new client greeting (max) | NOOP (max) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in s8["servers"].items():
        rows.append(f"| {name} | {r['held']} / {r['wanted']} | {r['rss_before_kb'] / 1024:.1f} MB "
                    f"| {r['rss_after_kb'] / 1024:.1f} MB | {r['rss_per_connection_kb']:.1f} KB "
                    f"| {r['threads_after']} | {fmt_ms(r['probe_greeting_max_ms'])} ms | {fmt_ms(r['probe_noop_max_ms'])} ms |")
    for name, why in s8["skipped"].items():
        rows.append(f"| {name} | skipped: {why} | | | | | | |")
    return "\n".join(rows)


def targets(results: dict) -> list[dict]:
    """Issue 6's targets, each with met / not met / not measured and the numbers."""
    sc = results["scenarios"]
    out = []

    def rate(key, name):
        return sc.get(key, {}).get("servers", {}).get(name, {}).get("median", {}).get("rate")

    def add(target, met, detail):
        out.append({"target": target, "met": met, "detail": detail})

    for key in ("S1", "S3"):
        ours, bare = rate(key, OURS), rate(key, BARE)
        if ours is None or bare is None:
            add(f"{key}: ours >= 0.7x bare loop", None, "not measured")
        else:
            add(f"{key}: ours >= 0.7x bare loop", ours >= 0.7 * bare, f"{ours / bare:.2f}x ({fmt_rate(ours)} vs {fmt_rate(bare)})")
        for peer in ("pyftpdlib", "twisted", "asyncio-streams"):
            other = rate(key, peer)
            if ours is None or other is None:
                add(f"{key}: ours > {peer}", None, "not measured")
            else:
                add(f"{key}: ours > {peer}", ours > other, f"{ours / other:.2f}x ({fmt_rate(ours)} vs {fmt_rate(other)})")
    for key in ("S2", "S4"):
        ours = rate(key, OURS)
        for peer in ("pyftpdlib", "twisted"):
            other = rate(key, peer)
            if ours is None or other is None:
                add(f"{key}: ours > {peer}", None, "not measured")
            else:
                add(f"{key}: ours > {peer}", ours > other, f"{ours / other:.2f}x ({fmt_rate(ours)} vs {fmt_rate(other)})")
    s4 = sc.get("S4", {}).get("servers", {}).get(OURS, {}).get("median")
    if s4:
        errors = s4["errors"] + s4["bad_replies"] + s4["setup_failures"]
        add("S4: no errors", errors == 0, f"{errors} errors")
        add("S4: p99 < 100 ms", s4["p99_ms"] < 100, f"p99 {fmt_ms(s4['p99_ms'])} ms")
    ours7, xml7 = rate("S7", OURS), rate("S7", XMLRPC.name)
    if ours7 is None or xml7 is None:
        why = sc.get("S7", {}).get("skipped", {}).get(OURS) or sc.get("S7", {}).get("skipped", {}).get(XMLRPC.name)
        add("S7: ours >= 10x xmlrpc meter server (durable)", None, f"not measured: {why}" if why else "not measured")
    else:
        add("S7: ours >= 10x xmlrpc meter server (durable)", ours7 >= 10 * xml7,
            f"{ours7 / xml7:.1f}x ({fmt_rate(ours7)} vs {fmt_rate(xml7)} readings/s)")
    s8 = sc.get("S8", {}).get("servers", {}).get(OURS)
    if s8:
        add("S8: 10,000 idle connections held", s8["held"] >= S8_CONNECTIONS and s8["holder_errors"] == 0,
            f"{s8['held']} held, {s8['holder_errors']} errors")
        add("S8: < 32 KB RSS per connection", s8["rss_per_connection_kb"] < 32, f"{s8['rss_per_connection_kb']:.1f} KB")
        add("S8: new client greeted < 100 ms", s8["probe_greeting_max_ms"] < 100,
            f"max {fmt_ms(s8['probe_greeting_max_ms'])} ms over {results['config']['idle_probes']} clients")
    else:
        add("S8: idle capacity", None, "not measured")
    return out


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
    parser.add_argument("--scenarios", default="S1,S2,S3,S4,S5,S6,S7,S8", help="comma-separated, e.g. S1,S3")
    parser.add_argument("--servers", default=",".join(s.name for s in PEERS), help="comma-separated")
    parser.add_argument("--workers", type=int, default=2, help="load generator processes for multi-connection scenarios")
    parser.add_argument("--idle-connections", type=int, default=S8_CONNECTIONS)
    parser.add_argument("--idle-probes", type=int, default=20)
    parser.add_argument("--loadgen", default=DEFAULT_LOADGEN)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=DIR",
                        help="also measure the daemon of the repository copy DIR as server NAME (experiments)")
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
        log(f"bench: the fd limit is {fd_limit}: S8 opens {args.idle_connections} connections "
            f"(raise the hard limit: ulimit -Hn)")
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    for item in args.variant:
        name, _, directory = item.partition("=")
        if not name or not os.path.isfile(os.path.join(directory, "daemon.py")):
            parser.error(f"--variant {item}: want NAME=DIR with DIR/daemon.py")
        VARIANTS[name] = os.path.abspath(directory)
    servers = []
    for spec in PEERS:
        if spec.name not in wanted:
            continue
        why = spec.available()
        if why:
            log(f"bench: skipping {spec.name}: {why}")
            continue
        servers.append(spec.name)
        if spec.name == OURS:
            servers += list(VARIANTS)
    if VARIANTS and OURS not in servers:
        servers[0:0] = list(VARIANTS)
    help_text = daemon_help()
    features = {"db": has_option(help_text, "--db"), "db_sync": has_option(help_text, "--db-sync")}
    keys = [k.strip().upper() for k in args.scenarios.split(",") if k.strip()]
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="run-", dir=_tmp_root())
    results = {
        "mode": "quick" if args.quick else "full",
        "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + (argv if argv is not None else sys.argv[1:])),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "cpu": _cpu_model(), "fd_limit": fd_limit},
        "config": {"repetitions": args.repetitions, "warmup_s": args.warmup, "window_s": args.duration,
                   "loadgen_workers": args.workers, "idle_connections": args.idle_connections,
                   "idle_probes": args.idle_probes, "daemon_features": features, "servers": servers},
        "scenarios": {},
    }
    log(f"bench: {results['mode']} mode: {args.repetitions} repetition(s), {args.warmup:g} s warm-up, "
        f"{args.duration:g} s window; servers: {', '.join(servers)}")
    try:
        for scenario in scenarios(args):
            if scenario.key not in keys:
                continue
            log(f"{scenario.key}: {scenario.title}")
            results["scenarios"][scenario.key] = run_scenario(scenario, servers, args, features, workdir)
        if "S8" in keys:
            log(f"S8: {args.idle_connections} idle connections")
            results["scenarios"]["S8"] = run_idle(servers, args, features, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["targets"] = targets(results)
    with open(args.output, "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2)
    print()
    print(f"lineproto benchmark, {results['mode']} mode ({args.repetitions} repetition(s) x {args.duration:g} s "
          f"after {args.warmup:g} s warm-up, medians); {os.cpu_count()} cores, Python {platform.python_version()}")
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
    print()
    print(targets_table(results["targets"]))
    print()
    print(f"written: {os.path.relpath(args.output, ROOT)}")
    return 0


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
