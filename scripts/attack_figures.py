#!/usr/bin/env python3
"""Attack figures: run the Security issue's attacks against a daemon on loopback and print what they achieve.

    python3 scripts/attack_figures.py [--root CHECKOUT] [--engine events|threads] [--only 1,2,3,4]

Each attack gets a fresh daemon from ``--root`` (default: this script's checkout), started as
``daemon.py --port 0 --notify FILE --db TMP --users FILE`` with one account, ``victim``, whose
password hash has the full default cost (``hash_password(pw)``); when that daemon has
``--password-cost`` (its ``--help`` says so) it gets the same cost, so old and new code hash
alike. The attacks, each bounded to about 30 s, the whole run to about 3 minutes:

1. online guessing: wrong passwords for ``victim`` as fast as the daemon answers, for
   ``--guess-seconds``, from 1 client and from 20 at once (each reconnects when closed);
2. memory: 400 connections send a wrong ``PASS`` at the same moment, from one address and
   spread over 8 (50 each); the daemon's peak RSS (``VmHWM``) and the time to answer them all;
3. exhaustion: 127.0.0.1 opens up to 1000 connections that send one byte every 10 s, while a
   client from 127.0.0.2 connects and sends 50 ``NOOP``;
4. log volume: 1 MB of ``X`` lines, 1 MB of random bytes and a few lines carrying ESC and CR,
   each on its own connection; what the daemon's log (its stderr, in a file) gained.

Progress goes to stderr, the table (Markdown) to stdout. The figures come from one machine,
on loopback, with this script's client on the same cores as the daemon: they show orders of
magnitude, not exact rates.
"""

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(SCRIPT_ROOT))

from lineproto.argtypes import ArgumentParser, positive_seconds  # noqa: E402
from lineproto.domain.accounts import SCRYPT_N, User, format_user, hash_password  # noqa: E402

VICTIM = "victim"
VICTIM_PASSWORD = "correct horse battery staple"
LEGIT_ADDRESS = "127.0.0.2"  # Linux routes all of 127/8 to lo: another source address, no setup
DAY = 86400
NEWLINE = b"\n"
REPLY_LINE = re.compile(rb"^(\d{3})([ -])(.*?)\r?\n?$", re.S)
RETRY_SECONDS = re.compile(rb"try again in (\d+) s")
#: Lines that carry ESC and bare CR where a daemon might log them: a verb, a user name, a bare line.
CRAFTED_LINES = b"FR\x1bOB \x1b[2J\x1b[31mfake\r line\r\nUSER ev\x1bil\r\nPASS x\r\n\x1b]0;title\x07\r\n"


def note(text: str) -> None:
    """A progress line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


class Daemon:
    """A daemon.py of the checkout under test, on a free port, its stderr (the log) in a file."""

    def __init__(self, root: Path, workdir: Path, name: str, args: list[str]):
        self.notify = workdir / f"{name}.notify"
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - open while the daemon runs
        command = [sys.executable, str(root / "daemon.py"), "--port", "0", "--notify", str(self.notify), *args]
        command += ["--db", str(workdir / f"{name}.db")]
        self.process = subprocess.Popen(
            command, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log
        )
        self.port = self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> int:
        """The port, once the notify file says the socket listens (the daemon's readiness signal)."""
        deadline = time.monotonic() + timeout
        while not self.notify.exists() or not self.notify.read_text().strip():
            if self.process.poll() is not None:
                raise SystemExit(f"attack_figures: the daemon exited {self.process.returncode}: {self.log_text()}")
            if time.monotonic() > deadline:
                raise SystemExit(f"attack_figures: the daemon was not ready in {timeout:.0f} s")
            time.sleep(0.01)
        return int(self.notify.read_text().splitlines()[0].rsplit(":", 1)[1])

    def status(self, key: str) -> int:
        """A ``/proc/PID/status`` figure in kB (``VmHWM``: peak RSS, ``VmRSS``: RSS now)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def log_size(self) -> int:
        self._log.flush()
        return self.log_path.stat().st_size

    def log_bytes(self, start: int) -> bytes:
        with open(self.log_path, "rb") as log:
            log.seek(start)
            return log.read()

    def log_text(self) -> str:
        return self.log_bytes(0).decode("utf-8", "replace")[-2000:]

    async def wait_log(self, pattern: re.Pattern, start: int, timeout: float) -> bool:
        """True once the log after ``start`` matches ``pattern`` (log lines may trail the replies)."""
        deadline = time.monotonic() + timeout
        while not pattern.search(self.log_bytes(start)):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def description(self) -> str:
        """What the daemon says it runs (engine and event loop), from its log."""
        match = re.search(r"running the (.+)", self.log_bytes(0).decode("utf-8", "replace"))
        return match[1].strip() if match else "unknown"

    def stop(self) -> None:
        """SIGTERM, and SIGKILL after 5 s: the figures are taken, only the run's time is at stake."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class Line:
    """One client connection with a minimal reply reader (the final line of a reply: ``NNN text``)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, source: str = "127.0.0.1", timeout: float = 15.0) -> "Line":
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0), limit=1 << 20), timeout
        )
        return cls(reader, writer)

    async def reply(self) -> tuple[int, bytes]:
        """The code and the last line's text of the next reply; ConnectionError if the server closed first."""
        code, lines = await self.reply_lines()
        return code, lines[-1]

    async def reply_lines(self) -> tuple[int, list[bytes]]:
        """The code and every line's text of the next reply (``NNN-text`` ... ``NNN text``)."""
        lines = []
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("closed by the server")
            match = REPLY_LINE.match(line)
            lines.append(match[3] if match else line.rstrip(b"\r\n"))
            if match and match[2] == b" ":
                return int(match[1]), lines

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    @property
    def local_port(self) -> int:
        return self.writer.get_extra_info("sockname")[1]

    def close(self) -> None:
        self.writer.transport.abort()


@dataclass
class Figures:
    """One attack's figures, in the order they are printed."""

    attack: str
    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, figure: str, value) -> None:
        self.rows.append((figure, str(value)))


class Attacks:
    """The attacks against daemons of one checkout; each starts its own daemon and returns its figures."""

    def __init__(self, root: Path, workdir: Path, engine: str, guess_seconds: float, seed: int):
        self.root = root
        self.workdir = workdir
        self.engine = engine
        self.guess_seconds = guess_seconds
        self.seed = seed
        self.users = workdir / "users.txt"
        self.descriptions: set[str] = set()  # what the daemons said they run (engine, event loop)
        # a full-cost hash, as a real account has (hash_password's default cost), for old and new code alike
        victim = User(VICTIM, "Victim Account", frozenset({"player"}), hash_password(VICTIM_PASSWORD))
        self.users.write_text(format_user(victim) + "\n", encoding="utf-8")
        help_text = subprocess.run(
            [sys.executable, str(root / "daemon.py"), "--help"], capture_output=True, text=True, check=False
        ).stdout
        self.has_password_cost = "--password-cost" in help_text  # the Security work added it

    @contextlib.contextmanager
    def daemon(self, name: str) -> Iterator[Daemon]:
        """A fresh daemon for one attack (no throttle, cap or high-water mark left by another); stopped after."""
        args = ["--engine", self.engine, "--users", str(self.users)]
        if self.has_password_cost:
            args += ["--password-cost", str(SCRYPT_N)]
        daemon = Daemon(self.root, self.workdir, name, args)
        try:
            yield daemon
        finally:
            daemon.stop()
            self.descriptions.add(daemon.description())

    # ------------------------------------------------------------------ 1. online guessing

    async def guessing(self, clients: int) -> Figures:
        with self.daemon(f"guess-{clients}") as daemon:
            note(f"1. online guessing: {clients} client(s) for {self.guess_seconds:.0f} s")
            log_start = daemon.log_size()
            tally: Counter = Counter()
            latencies: list[float] = []
            first_lock: list[tuple[float, int]] = []  # (when, retry seconds) of the first 430
            start = time.monotonic()
            stop_at = start + self.guess_seconds
            await asyncio.gather(
                *(self._guesser(daemon.port, stop_at, tally, latencies, first_lock) for _ in range(clients))
            )
            elapsed = time.monotonic() - start
            # the daemon's own count of checked passwords, replies still held included (Security STAT only)
            counted = (await self._stat(daemon.port)).get("login-failures")
            figures = Figures(f"1. guessing, {clients} client{'s' if clients > 1 else ''}")
            answered = tally[530] + tally[430] + tally[421]
            checked = tally[530] + tally[421]  # 421: the fifth failure of a connection, also checked
            figures.add("PASS answered /s", f"{answered / elapsed:.1f}")
            figures.add("530 (password checked)", tally[530])
            figures.add("430 (locked, not checked)", tally[430])
            figures.add("421 after the 5th failure (checked)", tally[421])
            figures.add("refused at connect / other", f"{tally['refused']} / {tally['other']}")
            figures.add("PASS not answered by the end (held or queued)", tally["unanswered"])
            figures.add("passwords checked (STAT login-failures)", counted or "no such STAT key")
            figures.add("checked guesses answered /s", f"{checked / elapsed:.1f}")
            figures.add("guesses/day at that rate", f"{checked / elapsed * DAY:,.0f}")
            if first_lock:
                # Locked: what the daemon checked until the lock ends is what it allows once per lock
                # cycle; replies still held at the end are checked passwords whose answer is only late.
                when, retry = first_lock[0]
                cycle = when - start + retry
                allowed = int(counted) if counted else checked
                figures.add("guesses/day, lock cycle", f"{allowed * DAY / cycle:,.0f} ({allowed} per {cycle:.0f} s)")
            else:
                figures.add("guesses/day, lock cycle", "no lock")
            if latencies:
                figures.add("PASS reply p50 / max", f"{ms(percentile(latencies, 0.5))} / {ms(max(latencies))}")
            figures.add("daemon log written", f"{daemon.log_size() - log_start:,} B")
            return figures

    async def _guesser(self, port, stop_at, tally, latencies, first_lock) -> None:
        """One client: USER + PASS with a wrong password, one guess in flight; reconnects when closed."""
        guess = 0
        while (left := stop_at - time.monotonic()) > 0:
            try:
                line = await Line.open(port, timeout=left)
            except (OSError, TimeoutError):
                tally["refused"] += 1
                continue
            try:
                code, _ = await asyncio.wait_for(line.reply(), left)
                if code != 220:
                    tally["refused"] += 1
                    continue
                while (left := stop_at - time.monotonic()) > 0:
                    guess += 1
                    sent = time.monotonic()
                    line.send(f"USER {VICTIM}\r\nPASS wrong guess {guess}\r\n".encode())
                    try:
                        await asyncio.wait_for(line.reply(), left)  # 331
                        code, text = await asyncio.wait_for(line.reply(), stop_at - time.monotonic())
                    except TimeoutError:
                        tally["unanswered"] += 1
                        return
                    latencies.append(time.monotonic() - sent)
                    tally[code if code in (530, 430, 421) else "other"] += 1
                    if code == 430 and not first_lock:
                        retry = RETRY_SECONDS.search(text)
                        first_lock.append((time.monotonic(), int(retry[1]) if retry else 0))
                    if code == 421:
                        break
            except (OSError, TimeoutError):  # closed without a reply (ConnectionError is an OSError)
                tally["other"] += 1
            finally:
                line.close()

    @staticmethod
    async def _stat(port: int) -> dict[str, str]:
        """STAT's ``key: value`` lines, asked as guest from 127.0.0.3 (no throttle or cap of the attack)."""
        line = await Line.open(port, "127.0.0.3")
        try:
            await asyncio.wait_for(line.reply(), 10)  # 220
            line.send(b"USER guest\r\nSTAT\r\n")
            await asyncio.wait_for(line.reply(), 10)  # 230
            _, lines = await asyncio.wait_for(line.reply_lines(), 10)
        finally:
            line.close()
        pairs = (text.decode("utf-8", "replace").split(": ", 1) for text in lines)
        return {pair[0].strip(): pair[1] for pair in pairs if len(pair) == 2}

    # ------------------------------------------------------------------ 2. memory

    async def memory(self, connections: int, addresses: int) -> Figures:
        with self.daemon(f"memory-{addresses}") as daemon:
            note(f"2. memory: {connections} wrong PASS at once from {addresses} address(es)")
            log_start = daemon.log_size()
            before = daemon.status("VmHWM")
            sources = [f"127.0.0.{10 + i}" if addresses > 1 else "127.0.0.1" for i in range(addresses)]
            opened = await asyncio.gather(
                *(self._greeted(daemon.port, sources[i % addresses]) for i in range(connections)),
                return_exceptions=True,
            )
            lines = [item for item in opened if isinstance(item, Line)]
            tally: Counter = Counter(
                "refused" if item is None else "connect failed" for item in opened if not isinstance(item, Line)
            )
            start = time.monotonic()
            for line in lines:
                line.send(f"USER {VICTIM}\r\nPASS wrong\r\n".encode())
            answers = await asyncio.gather(*(self._pass_reply(line, start + 25) for line in lines))
            elapsed = time.monotonic() - start
            tally.update(code for code, _ in answers)
            times = [when - start for code, when in answers if isinstance(code, int)]
            for line in lines:
                line.close()
            spread = f"{addresses} addresses" if addresses > 1 else "one address"
            figures = Figures(f"2. memory, {connections} from {spread}")
            figures.add("peak RSS (VmHWM) before", f"{before / 1024:.1f} MiB")
            figures.add("peak RSS (VmHWM) after", f"{daemon.status('VmHWM') / 1024:.1f} MiB")
            if tally["unanswered"]:
                answered = len(lines) - tally["unanswered"]
                rate = f"; at that rate all by ~{elapsed * len(lines) / answered:.0f} s" if answered else ""
                figures.add("all answered after", f"not within {elapsed:.0f} s ({answered} of {len(lines)}{rate})")
            else:
                figures.add("all answered after", f"{elapsed:.2f} s")
            if times:
                figures.add("PASS answered after, p50", f"{percentile(times, 0.5):.2f} s")
            figures.add(
                "replies 530 / 430 / 421",
                f"{tally[530]} / {tally[430]} / {tally[421]}",
            )
            figures.add(
                "refused at connect / other / unanswered",
                f"{tally['refused']} / {tally['other'] + tally['connect failed']} / {tally['unanswered']}",
            )
            figures.add("daemon log written", f"{daemon.log_size() - log_start:,} B")
            return figures

    @staticmethod
    async def _greeted(port: int, source: str) -> Line | None:
        """A connection that got the 220 greeting, or None if the daemon refused it."""
        line = await Line.open(port, source)
        try:
            code, _ = await asyncio.wait_for(line.reply(), 15)
        except (ConnectionError, TimeoutError):
            code = 0
        if code != 220:
            line.close()
            return None
        return line

    @staticmethod
    async def _pass_reply(line: Line, deadline: float) -> tuple[int | str, float]:
        """The PASS reply's code (or what happened instead) and when it came."""
        try:
            await asyncio.wait_for(line.reply(), deadline - time.monotonic())  # 331
            code, _ = await asyncio.wait_for(line.reply(), deadline - time.monotonic())
            return (code if code in (530, 430, 421) else "other"), time.monotonic()
        except TimeoutError:
            return "unanswered", time.monotonic()
        except (ConnectionError, OSError):
            return "other", time.monotonic()

    # ------------------------------------------------------------------ 3. exhaustion

    async def exhaustion(self, slow: int = 1000, hold: float = 20.0, noops: int = 50) -> Figures:
        with self.daemon("exhaustion") as daemon:
            note(f"3. exhaustion: {slow} slow connections from 127.0.0.1, {noops} NOOP from {LEGIT_ADDRESS}")
            log_start = daemon.log_size()
            opened = []
            for batch in range(0, slow, 100):  # 100 handshakes at a time: the listen backlog is not the test
                opened += await asyncio.gather(
                    *(self._greeted(daemon.port, "127.0.0.1") for _ in range(batch, min(slow, batch + 100))),
                    return_exceptions=True,
                )
            held = [line for line in opened if isinstance(line, Line)]
            note(f"   {len(held)} admitted; holding them for {hold:.0f} s")
            stop_at = time.monotonic() + hold
            trickles = [asyncio.create_task(self._trickle(line, stop_at)) for line in held]
            figures = Figures("3. exhaustion")
            figures.add("slow connections admitted", f"{len(held)} of {slow}")
            figures.add("daemon RSS holding them", f"{daemon.status('VmRSS') / 1024:.1f} MiB")
            greeting, latencies = await self._legitimate(daemon.port, noops)
            figures.add(f"{LEGIT_ADDRESS}: greeting", greeting)
            if latencies:
                p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
                figures.add(f"{LEGIT_ADDRESS}: NOOP p50 / p99", f"{ms(p50)} / {ms(p99)} ({len(latencies)} of {noops})")
            else:
                figures.add(f"{LEGIT_ADDRESS}: NOOP p50 / p99", "no NOOP answered")
            still_open = sum(await asyncio.gather(*trickles))
            figures.add(f"slow connections still open after {hold:.0f} s", still_open)
            for line in held:
                line.close()
            figures.add("daemon log written", f"{daemon.log_size() - log_start:,} B")
            return figures

    @staticmethod
    async def _trickle(line: Line, stop_at: float) -> bool:
        """Send ``NOOP\\r\\n`` one byte every 10 s until ``stop_at``; True if the daemon kept the connection."""
        payload = b"NOOP\r\n"
        sent = 0
        closed = asyncio.ensure_future(line.reader.read())  # b"" or a reply means the daemon gave up
        try:
            while time.monotonic() < stop_at:
                line.send(payload[sent % len(payload) : sent % len(payload) + 1])
                sent += 1
                try:
                    await asyncio.wait_for(asyncio.shield(closed), min(10.0, max(0.0, stop_at - time.monotonic())))
                    return False
                except TimeoutError:
                    pass
            return not closed.done()
        except (ConnectionError, OSError):
            return False
        finally:
            closed.cancel()

    @staticmethod
    async def _legitimate(port: int, noops: int) -> tuple[str, list[float]]:
        """A client from another address: its greeting (code and how long it took) and NOOP latencies."""
        start = time.monotonic()
        try:
            line = await Line.open(port, LEGIT_ADDRESS)
        except (OSError, TimeoutError) as exc:
            return f"no connection ({type(exc).__name__})", []
        latencies: list[float] = []
        greeting = ""
        try:
            code, _ = await asyncio.wait_for(line.reply(), 15)
            greeting = f"{code} in {ms(time.monotonic() - start)}"
            if code == 220:
                for _ in range(noops):
                    sent = time.monotonic()
                    line.send(b"NOOP\r\n")
                    code, _ = await asyncio.wait_for(line.reply(), 10)
                    if code != 200:
                        break
                    latencies.append(time.monotonic() - sent)
        except (OSError, TimeoutError) as exc:  # ConnectionError is an OSError
            greeting = greeting or f"none ({type(exc).__name__})"
        finally:
            line.close()
        return greeting, latencies

    # ------------------------------------------------------------------ 4. log volume

    async def log_volume(self, size: int = 1 << 20) -> Figures:
        with self.daemon("log") as daemon:
            figures = Figures("4. log volume")
            crafted = CRAFTED_LINES * 50
            # (what, bytes, seconds it may take): 30 s in all; the crafted lines' failed logins may be
            # held back by the throttle's delays (1 + 2 s by the fifth)
            payloads = (
                ("1 MB of X lines", b"X\n" * (size // 2), 22.0),
                ("1 MB of random bytes", random.Random(self.seed).randbytes(size), 3.0),
                (f"{len(crafted) / 1024:.0f} KB of ESC/CR lines", crafted, 5.0),
            )
            controls: Counter = Counter()
            for what, payload, bound in payloads:
                note(f"4. log volume: {what}")
                log_start = daemon.log_size()
                sent, replies, done = await self._flood(daemon, payload, log_start, bound)
                log = daemon.log_bytes(log_start)
                status = "" if done else f" (not finished in {bound:.0f} s)"
                figures.add(f"{what}: bytes written / replies read", f"{sent:,} / {replies:,}{status}")
                figures.add(f"{what}: log written", f"{len(log):,} B in {log.count(NEWLINE):,} lines")
                if len(payload) >= size:
                    megabytes = max(sent, 1) / (1 << 20)
                    lines = payload.count(NEWLINE)
                    if done or not replies:
                        figures.add(f"{what}: log per MB written", f"{len(log) / megabytes:,.0f} B")
                    else:  # cut short: the share of the lines answered is the share of the junk read
                        figures.add(
                            f"{what}: log per MB written",
                            f"{len(log) / (megabytes * replies / lines):,.0f} B (from the {replies / lines:.0%} read)",
                        )
                controls["ESC"] += log.count(b"\x1b")
                controls["bare CR"] += len(re.findall(rb"\r(?!\n)", log))
                controls["other C0"] += len(re.findall(rb"[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]", log))
            figures.add(
                "raw ESC / bare CR / other C0 in the log",
                f"{controls['ESC']} / {controls['bare CR']} / {controls['other C0']}",
            )
            return figures

    @staticmethod
    async def _flood(daemon: Daemon, payload: bytes, log_start: int, bound: float) -> tuple[int, int, bool]:
        """Send ``payload`` on one connection while reading the replies; (bytes sent, reply lines, finished)."""
        line = await Line.open(daemon.port)
        port = line.local_port
        deadline = time.monotonic() + bound
        received = 0

        async def read_all() -> None:
            nonlocal received
            while data := await line.reader.read(1 << 16):
                received += data.count(b"\n")

        reading = asyncio.ensure_future(read_all())
        sent = 0
        try:
            for offset in range(0, len(payload), 1 << 16):
                chunk = payload[offset : offset + (1 << 16)]
                line.send(chunk)
                await asyncio.wait_for(line.writer.drain(), deadline - time.monotonic())
                sent += len(chunk)
            line.writer.write_eof()
        except (ConnectionError, OSError, TimeoutError):
            pass  # the daemon closed the connection (or the bound is up): what it got is what counts
        try:
            await asyncio.wait_for(reading, max(0.1, deadline - time.monotonic()))
            done = True
        except TimeoutError:  # before OSError: TimeoutError is one
            done = False
        except OSError:  # the daemon reset the connection: it is done with it
            done = True
        line.close()
        # every line of this connection is logged once its "close" line is
        closed = re.compile(rb"close 127\.0\.0\.1:%d\b" % port)
        done = await daemon.wait_log(closed, log_start, timeout=10) and done
        return sent, max(0, received - 1), done  # the greeting is not a reply


def checkout_commit(root: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(root), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip()[:72] or "not a git checkout"


async def run(attacks: Attacks, only: set[int]) -> list[Figures]:
    results = []
    if 1 in only:
        results.append(await attacks.guessing(1))
        results.append(await attacks.guessing(20))
    if 2 in only:
        results.append(await attacks.memory(400, 1))
        results.append(await attacks.memory(400, 8))
    if 3 in only:
        results.append(await attacks.exhaustion())
    if 4 in only:
        results.append(await attacks.log_volume())
    return results


def attack_numbers(text: str) -> set[int]:
    """``--only``: which of the attacks 1-4 to run."""
    try:
        numbers = {int(part) for part in text.split(",")}
    except ValueError:
        raise argparse.ArgumentTypeError(f"a comma-separated list of 1-4: {text!r}") from None
    if not numbers <= {1, 2, 3, 4}:
        raise argparse.ArgumentTypeError(f"attacks are numbered 1-4: {text!r}")
    return numbers


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="attack_figures.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=SCRIPT_ROOT, help="checkout whose daemon.py is attacked")
    parser.add_argument("--engine", choices=("events", "threads"), default="events")
    parser.add_argument("--only", type=attack_numbers, default={1, 2, 3, 4}, help="attacks to run, e.g. 1,3")
    parser.add_argument("--guess-seconds", type=positive_seconds, default=20.0, help="length of attack 1 (20)")
    parser.add_argument("--seed", type=int, default=1, help="seed of attack 4's random bytes (1)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if not (root / "daemon.py").is_file():
        parser.error(f"no daemon.py in {root}")
    if args.guess_seconds > 30:
        parser.error("--guess-seconds: at most 30 (every attack stays within 30 s)")
    started = time.monotonic()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="attack-figures-") as workdir:
        attacks = Attacks(root, Path(workdir), args.engine, args.guess_seconds, args.seed)
        results = asyncio.run(run(attacks, args.only))
    print(f"Attack figures: {root} ({checkout_commit(root)}), {' / '.join(sorted(attacks.descriptions))}, ", end="")
    print(f"--password-cost {'given' if attacks.has_password_cost else 'absent'}, scrypt N={SCRYPT_N}; ", end="")
    print(f"{os.cpu_count()} CPUs, load {load:.2f} before / {os.getloadavg()[0]:.2f} after; ", end="")
    print(f"{time.monotonic() - started:.0f} s in all")
    print()
    print("| attack | figure | value |")
    print("| --- | --- | --- |")
    for figures in results:
        for figure, value in figures.rows:
            print(f"| {figures.attack} | {figure} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
