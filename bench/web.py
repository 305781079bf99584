#!/usr/bin/env python3
"""The web gateway's cost, in one run: `make bench` (docs/WEB.md, "Benchmark").

Starts a daemon and a gateway in front of it (both `--port 0 --notify FILE`, waited for by their
notify files, on 127.0.0.1 only), then measures, each for a window after a warm-up, with the
same number of concurrent clients:

- W1 `GET /wheel/american` requests per second through the gateway (no login: the gateway's own
  guest connection spins), next to `SPIN` on a raw line-protocol guest connection per client;
- W2 rounds per second through the gateway, a round being `POST /bet` (RED 1) then `POST /wheel`
  for a guest logged in with a cookie, next to the same round over the raw line protocol (`BET RED
  1`, then `SPIN`, each waiting for its reply), one connection per client. A guest whose 100 chips
  run out logs in as a new guest, on both sides alike.

Guests play in memory, so no disk sync is measured: the numbers are the gateway's own cost
(HTTP, JSON, its hop) against the bare protocol. The gateway's and the daemon's CPU seconds in the
window are read from /proc, and so are the load client's (this process: aiohttp's client is not
free, and on a small machine it shares the cores with the gateway).

    python3 bench/web.py            # 1 s warm-up, 5 s windows, 8 clients
    python3 bench/web.py --quick    # 0.5 s warm-up, 2 s windows
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "127.0.0.1"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(command: list[str], notify: Path, log: Path) -> tuple[subprocess.Popen, int]:
    """A server started with --notify: the process and its port once the file names it."""
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not notify.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"bench/web.py: {command[1]} did not start: {log.read_text(errors='replace')[-500:]}")
        time.sleep(0.01)
    return process, int(notify.read_text().split()[0].rsplit(":", 1)[1])


class RawGuest:
    """One raw line-protocol connection, logged in as guest."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        from lineproto.wire import ReplyParser

        self.reader, self.writer, self.parser, self.ready = reader, writer, ReplyParser(), []

    @classmethod
    async def open(cls, port: int) -> RawGuest:
        guest = cls(*await asyncio.open_connection(HOST, port))
        await guest.reply()
        await guest.command("USER guest")
        return guest

    async def reply(self):
        while not self.ready:
            self.ready.extend(self.parser.feed(await self.reader.read(65536)))
        return self.ready.pop(0)

    async def command(self, line: str):
        self.writer.write(line.encode() + b"\r\n")
        reply = await self.reply()
        if reply.code >= 400:
            raise SystemExit(f"bench/web.py: {line}: {reply}")
        return reply


async def measure(clients: list, one, warmup: float, window: float, pids: list[int]) -> tuple[float, list[float]]:
    """Operations per second over ``window`` (after ``warmup``), each client running ``one(client)`` in a
    loop; and each of ``pids``' CPU seconds per second in the window."""
    counting = False
    count = 0
    stop = False

    async def loop(client) -> None:
        nonlocal count
        while not stop:
            await one(client)
            if counting:
                count += 1

    tasks = [asyncio.ensure_future(loop(client)) for client in clients]
    await asyncio.sleep(warmup)
    cpu = [cpu_seconds(pid) for pid in pids]
    started = time.monotonic()
    counting = True
    await asyncio.sleep(window)
    counting = False
    elapsed = time.monotonic() - started
    cpu = [(cpu_seconds(pid) - before) / elapsed for pid, before in zip(pids, cpu, strict=True)]
    stop = True
    await asyncio.gather(*tasks)
    return count / elapsed, cpu


async def run(args: argparse.Namespace, daemon_port: int, gateway_port: int, pids: dict[str, int]) -> list[list[str]]:
    import aiohttp

    from lineproto.wire.shapes import Spin

    base = f"http://{HOST}:{gateway_port}"
    rows = []
    connector = aiohttp.TCPConnector(limit=args.clients)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def wheel(_client) -> None:
            async with http.get(f"{base}/wheel/american") as response:
                assert response.status == 200, response.status
                await response.json()

        async def raw_spin(guest: RawGuest) -> None:
            await guest.command("SPIN")

        rate, cpu = await measure(list(range(args.clients)), wheel, args.warmup, args.window, list(pids.values()))
        raws = [await RawGuest.open(daemon_port) for _ in range(args.clients)]
        raw_rate, raw_cpu = await measure(raws, raw_spin, args.warmup, args.window, [pids["daemon"], pids["client"]])
        rows.append(["W1 GET /wheel/american", f"{rate:,.0f}/s", f"{raw_rate:,.0f}/s (SPIN)", *_cpu(cpu, raw_cpu)])

        sessions = []
        for _ in range(args.clients):
            jar = aiohttp.CookieJar(unsafe=True)  # the gateway is an IP address: keep its cookie
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), cookie_jar=jar)
            async with session.post(f"{base}/login", json={"user": "guest"}) as response:
                assert response.status == 200, await response.text()
                csrf = (await response.json())["csrf"]
            sessions.append((session, {"X-CSRF-Token": csrf}))

        async def web_round(client) -> None:
            session, headers = client
            async with session.post(f"{base}/bet", json={"bet": "RED", "amount": 1}, headers=headers) as response:
                assert response.status == 201, await response.text()
                await response.json()
            async with session.post(f"{base}/wheel", headers=headers) as response:
                assert response.status == 200, await response.text()
                bankroll = (await response.json())["bankroll"]
            if bankroll < 1:  # a guest's 100 chips ran out: a new guest table (the same on the raw side)
                async with session.post(f"{base}/login", json={"user": "guest"}) as response:
                    headers["X-CSRF-Token"] = (await response.json())["csrf"]

        async def raw_round(guest: RawGuest) -> None:
            await guest.command("BET RED 1")
            if Spin.from_reply(await guest.command("SPIN")).bankroll < 1:
                await guest.command("USER guest")

        try:
            rate, cpu = await measure(sessions, web_round, args.warmup, args.window, list(pids.values()))
        finally:
            for session, _ in sessions:
                await session.close()
        raw_rate, raw_cpu = await measure(raws, raw_round, args.warmup, args.window, [pids["daemon"], pids["client"]])
        rows.append(["W2 rounds (BET + SPIN)", f"{rate:,.0f}/s", f"{raw_rate:,.0f}/s", *_cpu(cpu, raw_cpu)])
        for guest in raws:
            guest.writer.close()
    return rows


def _cpu(web: list[float], raw: list[float]) -> list[str]:
    """gateway, daemon, load client through the gateway; daemon, load client over the raw protocol."""
    return [f"{web[0]:.2f}", f"{web[1]:.2f}", f"{web[2]:.2f}", f"{raw[0]:.2f}", f"{raw[1]:.2f}"]


def main() -> int:
    parser = argparse.ArgumentParser(description="the web gateway against the raw line protocol")
    parser.add_argument("--quick", action="store_true", help="0.5 s warm-up, 2 s windows")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default %(default)s)")
    args = parser.parse_args()
    args.warmup, args.window = (0.5, 2.0) if args.quick else (1.0, 5.0)
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        print("bench/web.py: skipped: the gateway needs the web extra (pip install '.[web]')")
        return 0
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        daemon, daemon_port = start(
            [sys.executable, str(ROOT / "daemon.py"), "--port", "0", "--notify", str(tmp_path / "daemon"),
             "--db", str(tmp_path / "bench.db"), "--max-per-address", "1000"],
            tmp_path / "daemon",
            tmp_path / "daemon.log",
        )  # fmt: skip
        try:
            gateway, gateway_port = start(
                [sys.executable, str(ROOT / "client.py"), "web", "--daemon", f"{HOST}:{daemon_port}",
                 "--port", "0", "--notify", str(tmp_path / "gateway")],
                tmp_path / "gateway",
                tmp_path / "gateway.log",
            )  # fmt: skip
            try:
                pids = {"gateway": gateway.pid, "daemon": daemon.pid, "client": os.getpid()}
                rows = asyncio.run(run(args, daemon_port, gateway_port, pids))
            finally:
                gateway.terminate()
                gateway.wait(10)
        finally:
            daemon.terminate()
            daemon.wait(10)
    window = f"{args.window:g} s window, {args.clients} clients"
    print(f"\nweb gateway ({window}; CPU in cores busy)\n")
    print(
        "| scenario | through the gateway | raw line protocol | gateway CPU | daemon CPU | client CPU "
        "| daemon CPU (raw) | client CPU (raw) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
