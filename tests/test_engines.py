"""What the engines add, through real sockets on both engines: off-loop work, flow control, timeouts, shutdown."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, RawConnection, stat
from lineproto.commands import Command, build_services
from lineproto.commands.table import STORE_POOL
from lineproto.connection import ConnectionLimits
from lineproto.engines import ServerSettings, start_server
from lineproto.wire import Reply


def rss_kb(pid: int, key: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(rf"^{key}:\s+(\d+) kB", status.read(), re.M).group(1))


def noop_latencies(port: int, count: int, raw: RawConnection | None = None) -> list[float]:
    """Seconds each of ``count`` NOOPs took, on ``raw`` or on a new connection."""
    if raw is None:
        with RawConnection(port) as raw:
            raw.reply()
            return noop_latencies(port, count, raw)
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        assert raw.command("NOOP").code == 200
        latencies.append(time.perf_counter() - began)
    return latencies


# ------------------------------------------------------------------ off-loop work (in process)


def services_with_slow_commit(delay: float, offloaded: bool):
    """Services with SLOW: a store commit that takes ``delay`` seconds (offloaded like a real one, or not)."""
    services = build_services()
    done = threading.Event()

    def slow(session):
        time.sleep(delay)  # what a slow fsync looks like from the loop
        done.set()
        return Reply(250, ("committed",))

    blocks = (lambda session: STORE_POOL) if offloaded else None
    services.table.add(Command("SLOW", "", "A commit that takes a while (tests)", slow, blocks=blocks))
    return services, done


@pytest.mark.parametrize("offloaded", [True, False], ids=["offloaded", "inline-control"])
def test_a_slow_commit_does_not_delay_another_connections_noop(engine, offloaded):
    """Order, not timing: every NOOP of another connection is answered while a 1 s commit still runs."""
    services, done = services_with_slow_commit(1.0, offloaded)
    with start_server(services, ServerSettings(port=0), engine) as running:
        port = running.address[1]
        probe = RawConnection(port)
        probe.reply()
        noop_latencies(port, 5, probe)  # warm up
        slow = RawConnection(port)
        slow.reply()
        slow.send(b"SLOW\r\n")
        time.sleep(0.05)  # SLOW has begun (on the loop, for the control)
        answered_during_commit = []
        for _ in range(20):
            assert probe.command("NOOP").code == 200
            answered_during_commit.append(not done.is_set())
        assert slow.reply() == Reply(250, ("committed",))
        slow.close()
        probe.close()
    if offloaded or engine == "threads":
        assert all(answered_during_commit), answered_during_commit
    else:  # the control proves the check sees a blocked loop
        assert not any(answered_during_commit), answered_during_commit


def test_start_server_reports_the_address_and_stops_with_421(engine):
    services = build_services()
    with start_server(services, ServerSettings(port=0), engine) as running:
        host, port = running.address
        assert host == "127.0.0.1" and port > 0
        raw = RawConnection(port)
        assert raw.reply().code == 220
        running.stop()
        assert raw.reply().code == 421
        raw.close()


def test_the_limits_apply_in_process(engine):
    settings = ServerSettings(port=0, limits=ConnectionLimits(max_connections=1))
    with start_server(build_services(), settings, engine) as running, RawConnection(running.address[1]) as first:
        assert first.reply().code == 220
        with RawConnection(running.address[1]) as second:
            assert second.reply().code == 421


# ------------------------------------------------------------------ the daemon


def test_pipelining_without_reading_is_throttled(start_daemon):
    """A client that sends HELP after HELP and never reads: the daemon stops reading, memory stays bounded."""
    daemon = start_daemon()
    before = rss_kb(daemon.process.pid)
    sock = socket.create_connection(("127.0.0.1", daemon.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(0.5)
    chunk = b"HELP\r\n" * 10_000  # each answer is ~2 KB: 20 MB of replies per chunk
    sent = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            sent += sock.send(chunk)
        except TimeoutError:
            break  # the daemon stopped reading
    assert time.monotonic() < deadline, "the daemon kept reading an unread flood of replies"
    assert sent < 8_000_000, f"{sent} bytes accepted before the daemon stopped reading"
    grown = rss_kb(daemon.process.pid) - before
    assert grown < 30_000, f"RSS grew {grown} KB"
    sock.close()
    assert RawConnection(daemon.port).reply().code == 220  # and it serves others


def test_a_line_trickled_byte_by_byte_still_times_out(start_daemon):
    daemon = start_daemon("--idle-timeout", "1")
    with RawConnection(daemon.port) as raw:
        raw.reply()
        began = time.monotonic()
        raw.sock.settimeout(0.2)
        reply = None
        while reply is None and time.monotonic() - began < 5:
            try:
                raw.send(b"N")
            except OSError:
                break
            try:
                reply = raw.reply()
            except TimeoutError:
                pass
        assert reply is not None and reply.code == 421 and "Idle" in reply.text
        assert 0.9 < time.monotonic() - began < 3


def test_commands_served_counts_pipelined_commands(daemon, connect):
    raw = connect(daemon.port)
    before = int(stat(raw)["commands-served"])
    raw.send(b"NOOP\r\n" * 50)
    raw.replies(50)
    assert int(stat(raw)["commands-served"]) == before + 51


def test_sigterm_during_a_pipelined_flood_stops_after_the_running_command(start_daemon):
    daemon = start_daemon()
    raw = RawConnection(daemon.port, timeout=20)
    raw.reply()
    raw.command("USER guest")
    total = 200_000
    sender = threading.Thread(target=lambda: _send_quietly(raw.sock, b"BET RED 1\r\nCLR\r\n" * (total // 2)))
    sender.start()
    raw.replies(100)  # the flood is being answered
    began = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    answered = 100
    while True:
        reply = raw.reply()
        if reply.code == 421:
            break
        answered += 1
    assert "shutting down" in reply.text
    assert answered < total // 2, f"{answered} of {total} commands answered after SIGTERM"
    assert daemon.process.wait(10) == 0
    assert time.monotonic() - began < 6  # the grace is 5 s
    sender.join(10)
    raw.close()


def _send_quietly(sock, data):
    try:
        sock.sendall(data)
    except OSError:
        pass


def test_many_wrong_passwords_at_once_keep_memory_bounded(start_daemon, engine):
    """Each wrong PASS costs a full scrypt (~16 MB); only --auth-workers run at once."""
    # Wrong passwords from one address lock it; here only the hash pool is measured.
    daemon = start_daemon("--auth-workers", "2", "--address-lock-after", "1000", "--account-lock-after", "1000")
    clients = []
    for _ in range(30):
        raw = RawConnection(daemon.port, timeout=60)
        raw.reply()
        raw.send(b"USER nobody\r\nPASS wrong\r\n")
        clients.append(raw)
    with RawConnection(daemon.port) as probe:
        probe.reply()
        assert probe.command("NOOP").code == 200
        for raw in clients:
            assert raw.reply().code == 331
        probe.send(b"NOOP\r\n")
        finished = 0
        last_logins = clients[-3:]  # with 2 workers these come last: the NOOP must not wait for them
        probe_reply = probe.reply()
        for raw in last_logins:
            raw.sock.setblocking(False)
            try:
                finished += bool(raw.sock.recv(1, socket.MSG_PEEK))
            except BlockingIOError:
                pass
            raw.sock.setblocking(True)
            raw.sock.settimeout(60)
        assert probe_reply.code == 200
        assert finished < len(last_logins), "the NOOP waited for every login to finish"
    for raw in clients:
        assert raw.reply().code == 530
        raw.close()
    peak = rss_kb(daemon.process.pid, "VmHWM")
    assert peak < 200_000, f"peak RSS {peak} KB with 30 concurrent scrypt logins"


def test_log_says_which_engine_and_loop_run(start_daemon, engine):
    daemon = start_daemon()
    expected = "events engine on the asyncio loop" if engine == "events" else "threads engine"
    if engine == "events" and _has_uvloop():
        expected = "events engine on the uvloop loop"
    daemon.wait_log(expected)


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def test_uvloop_runs_the_same_protocol(tmp_path):
    from conftest import Daemon

    daemon = Daemon(tmp_path, "--loop", "uvloop")
    try:
        with RawConnection(daemon.port) as raw:
            assert raw.reply().code == 220
            assert [raw.command(line).code for line in ("USER guest", "BET RED 5", "SPIN", "QUIT")] == [
                230,
                200,
                250,
                221,
            ]
        daemon.wait_log("events engine on the uvloop loop")
    finally:
        assert daemon.stop() == 0


def test_loop_uvloop_without_uvloop_is_one_line_and_exit_2(tmp_path):
    hidden = tmp_path / "hide"
    hidden.mkdir()
    (hidden / "uvloop.py").write_text("raise ImportError('uvloop hidden by the test')\n")
    env = dict(os.environ, PYTHONPATH=f"{hidden}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    result = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "--port", "0", "--db", ":memory:", "--loop", "uvloop"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines()[-1] == "daemon.py: --loop uvloop needs uvloop: pip install 'lineproto[fast]'"
    )


def test_the_embedding_example_runs_as_documented(tmp_path):
    text = (ROOT / "docs" / "EMBEDDING.md").read_text()
    [example] = re.findall(r"```python\n(.*?)```", text, re.S)
    script = tmp_path / "example.py"
    script.write_text(example)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"213 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[0]), lines
    assert lines[1] == "214-TIME" and "The server's clock, UTC" in lines[2]
    assert lines[-1] == "stopped"


def test_logins_whose_clients_hung_up_are_not_hashed(start_daemon):
    """200 clients send USER + PASS and hang up at once: the queued hashes are dropped, not computed."""
    daemon = start_daemon("--auth-workers", "1")
    probe = RawConnection(daemon.port)
    probe.reply()
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", daemon.port))
        sock.sendall(b"USER nobody\r\nPASS wrong\r\n")
        sock.close()
    deadline = time.monotonic() + 10
    while stat(probe)["connections"] != "1":  # every hang-up seen
        assert time.monotonic() < deadline, stat(probe)
        time.sleep(0.05)
    cpu_before = _cpu_seconds(daemon.process.pid)
    time.sleep(1.0)  # the measurement window
    busy = _cpu_seconds(daemon.process.pid) - cpu_before
    # 200 full-cost hashes take ~10 s of CPU on one worker; dropped, the daemon idles.
    assert busy < 0.3, f"the daemon used {busy:.2f} s of CPU in the second after the clients left"
    assert probe.command("NOOP").code == 200
    probe.close()


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_reader_who_resets_during_a_store_command_breaks_nothing(start_daemon, tmp_path):
    """The command runs to its end in the store; the session is released after it; others carry on."""
    import sqlite3
    import struct

    database = tmp_path / "reset.db"
    daemon = start_daemon("--db", str(database), users=True)
    raw = RawConnection(daemon.port)
    raw.reply()
    assert [raw.command(line).code for line in ("USER carol", "PASS secret")] == [331, 230]
    blocker = sqlite3.connect(database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the daemon's next commit waits for this lock
    try:
        raw.send(b"JOB\r\n")
        time.sleep(0.2)  # JOB is waiting for the lock in the store
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.sock.close()  # a reset, not a FIN
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    with RawConnection(daemon.port) as other:
        other.reply()
        assert [other.command(line).code for line in ("USER carol", "PASS secret")] == [331, 230]
        first = other.command("JOB")
        assert first.code == 250, first
        # The reset connection leaves the count first, then its session's release is written.
        deadline = time.monotonic() + 10
        while True:
            with sqlite3.connect(database) as check:
                held = check.execute("SELECT count(*) FROM jobs").fetchone()[0]
            if held == 1 and int(stat(other)["connections"]) == 1:
                break
            assert time.monotonic() < deadline, f"{held} jobs held: only this session's should be"
            time.sleep(0.05)
        assert other.command("NOOP").code == 200
    assert daemon.stop() == 0


def test_half_closed_logins_are_answered_while_hashes_queue(start_daemon):
    """USER + PASS + STAT then shutdown(SHUT_WR): every line is answered, whatever the queue."""
    daemon = start_daemon("--auth-workers", "1", users=True)
    clients = []
    for _ in range(8):
        raw = RawConnection(daemon.port, timeout=60)
        raw.reply()
        raw.send(b"USER carol\r\nPASS secret\r\nSTAT\r\n")
        raw.sock.shutdown(socket.SHUT_WR)
        clients.append(raw)
    for raw in clients:
        assert [reply.code for reply in raw.replies(3)] == [331, 230, 211]
        assert raw.read_all() == b""
        raw.close()


def test_a_long_pipelined_batch_read_slowly_is_not_an_idle_connection(start_daemon):
    daemon = start_daemon("--idle-timeout", "1")
    raw = RawConnection(daemon.port, timeout=30)
    raw.reply()
    raw.send(b"HELP\r\n" * 3000 + b"QUIT\r\n")  # ~6 MB of replies: more than the buffers hold
    replies = []
    began = time.monotonic()
    while not replies or replies[-1].code != 221:
        replies.append(raw.reply())
        if len(replies) % 100 == 0:
            time.sleep(0.1)  # a slow reader: the batch takes longer than the idle timeout
    assert time.monotonic() - began > 1.0
    assert [r.code for r in replies] == [214] * 3000 + [221]
    raw.close()
