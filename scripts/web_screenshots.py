"""Screenshots of the web page, taken with headless Chromium: docs/web-table, -result, -meter, -phone, -shared.png.

    .venv/bin/python scripts/web_screenshots.py [--out docs] [--width 1100]

It starts what a user would run, in a temporary directory that is removed after: a daemon (``daemon.py
--seed 7`` so the pictures are the same on every run, a player ``dave`` and a reader ``carol``, the example
roster) and the gateway in front of it (``client.py web``), then drives the page in Debian's Chromium
through Playwright: dave logs in, places bets by clicking (docs/web-table.png), spins
(docs/web-result.png); carol takes a job and submits a reading (docs/web-meter.png: the next job taken,
its reading typed); dave again on a phone's 360 pixels (docs/web-phone.png); dave and a guest at the
shared table main (docs/web-shared.png: a chat line and a settled round; its seconds differ from run to
run). Every process it started is stopped, whatever happens. Exit status 2 and one line on a mistake on
the command line or a missing part (no Chromium, a daemon or gateway that does not start).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cluster import stop_process  # noqa: E402 - beside this script

from lineproto.domain.accounts import User, format_user, hash_password  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: The users of the pictures (cheap password hashes: the cost travels inside the hash).
USERS = {
    "dave": ("Dave Rolls", "player", "hunter2"),
    "carol": ("Carol Dent", "reader", "secret"),
}
PASSWORD_COST = 2**10


class Failure(Exception):
    """A part that cannot start: the one line to print."""


class Process:
    """A child process that writes ``HOST:PORT`` (or a URL) to a notify file once it listens."""

    def __init__(self, name: str, command: list[str], notify: Path, log: Path):
        self.name = name
        self.notify = notify
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - open while the process runs
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

    def address(self, timeout: float = 20.0) -> str:
        """The first line of the notify file, once the process wrote it."""
        deadline = time.monotonic() + timeout
        while not (self.notify.exists() and self.notify.read_text().strip()):
            if self.process.poll() is not None:
                raise Failure(f"{self.name} exited {self.process.returncode}: {self.last_log_line()}")
            if time.monotonic() > deadline:
                raise Failure(f"{self.name} not ready in {timeout:g} s: {self.last_log_line()}")
            time.sleep(0.02)
        return self.notify.read_text().splitlines()[0].strip()

    def last_log_line(self) -> str:
        """The log's last line (the temporary directory and the log go when the script ends)."""
        self._log.flush()
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "nothing in its log"

    def stop(self) -> None:
        stop_process(self.process)
        self._log.close()


def write_users(path: Path) -> Path:
    lines = []
    for name, (real_name, roles, password) in USERS.items():
        user = User(name, real_name, frozenset(roles.split(",")), hash_password(password, n=PASSWORD_COST, r=8, p=1))
        lines.append(format_user(user) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def start_stack(work: Path, processes: list[Process]) -> str:
    """A daemon and a gateway in front of it; the gateway's URL."""
    daemon = Process(
        "daemon",
        [
            sys.executable,
            str(ROOT / "daemon.py"),
            "--port",
            "0",
            "--notify",
            str(work / "daemon.notify"),
            "--db",
            str(work / "lineproto.db"),
            "--users",
            str(write_users(work / "users.txt")),
            "--password-cost",
            str(PASSWORD_COST),
            "--roster",
            str(ROOT / "docs" / "examples" / "roster.csv"),
            "--seed",
            "7",
            "--round-seconds",
            "3",
        ],
        work / "daemon.notify",
        work / "daemon.log",
    )
    processes.append(daemon)
    gateway = Process(
        "gateway",
        [
            sys.executable,
            str(ROOT / "client.py"),
            "web",
            "--daemon",
            daemon.address(),
            "--port",
            "0",
            "--notify",
            str(work / "web.notify"),
        ],
        work / "web.notify",
        work / "web.log",
    )
    processes.append(gateway)
    address = gateway.address()
    return address if address.startswith("http") else f"http://{address}"


def log_in(page, user: str) -> None:
    page.fill("#login-user", user)
    page.fill("#login-password", USERS[user][2])
    page.click("#login-submit")
    page.wait_for_selector("#app", state="visible")


def take_screenshots(url: str, out: Path, width: int) -> list[Path]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)

    shots = [out / f"web-{name}.png" for name in ("table", "result", "meter", "phone", "shared")]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            viewport = {"width": width, "height": 900}
            page = browser.new_context(viewport=viewport).new_page()
            page.set_default_timeout(15_000)
            page.goto(url + "/")
            log_in(page, "dave")
            expect(page.locator("#bankroll")).to_have_text("1000")
            for chip, bet in (("25", "RED"), ("5", "SPLIT 17-18"), ("5", "18"), ("1", "CORNER 17-18-20-21")):
                page.click(f".chip[data-chip='{chip}']")
                page.click(f"#layout button[data-bet='{bet}']")
            expect(page.locator("#open-bets li")).to_have_count(4)
            page.hover("#layout button[data-bet='SPLIT 20-21']")  # a split strip lights up under the pointer
            page.screenshot(path=str(shots[0]), full_page=True)
            page.click("#spin")
            page.wait_for_selector("#result-net")
            expect(page.locator("#history li").first).to_contain_text("Round 1")
            page.screenshot(path=str(shots[1]), full_page=True)

            meter = browser.new_context(viewport=viewport).new_page()
            meter.set_default_timeout(15_000)
            meter.goto(url + "/")
            log_in(meter, "carol")
            meter.click("#job")
            expect(meter.locator("#reading-meter")).to_have_value("G10001")
            meter.fill("#reading-value", "5983")
            meter.press("#reading-value", "Enter")
            expect(meter.locator("#reading-message")).to_contain_text("Accepted")
            meter.click("#job")
            expect(meter.locator("#reading-meter")).to_have_value("G10002")
            expect(meter.locator("#meter-status dd[data-key='my_readings']")).to_have_text("1")
            meter.fill("#reading-value", "2980")  # typed, not sent yet
            meter.screenshot(path=str(shots[2]), full_page=True)

            phone = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=1).new_page()
            phone.set_default_timeout(15_000)
            phone.goto(url + "/")
            log_in(phone, "dave")
            expect(phone.locator("#bankroll")).to_have_text("1023")
            phone.click("#layout button[data-bet='DOZEN2']")
            expect(phone.locator("#open-bets li")).to_have_count(1)
            phone.screenshot(path=str(shots[3]), full_page=True)

            # The shared table main: dave (the first page) and a guest, a bet, a chat line, a settled round.
            guest = browser.new_context(viewport=viewport).new_page()
            guest.set_default_timeout(15_000)
            guest.goto(url + "/")
            guest.fill("#login-user", "guest")
            guest.click("#login-submit")
            for seated in (page, guest):
                expect(seated.locator("#app")).to_have_attribute("data-events", "live")
                seated.click("#tab-shared")
                seated.click("#tables button[data-table='main']")
                expect(seated.locator("#seated")).to_have_text("main")
            page.click("#tab-table")
            page.click("#clear")
            page.click(".chip[data-chip='25']")
            page.click("#layout button[data-bet='BLACK']")
            guest.fill("#chat-text", "good luck, dave")
            guest.press("#chat-text", "Enter")
            page.click("#tab-shared")
            expect(page.locator("#feed li", has_text="650 guest")).to_have_count(1)
            page.wait_for_selector("#feed li.e630", timeout=20_000)
            page.click("#tables-refresh")
            page.screenshot(path=str(shots[4]), full_page=True)
        finally:
            browser.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="web_screenshots.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="the directory for the PNGs (default docs)")
    parser.add_argument("--width", type=int, default=1100, help="the browser window's width in pixels (default 1100)")
    args = parser.parse_args(argv)
    if not args.out.is_dir():
        parser.error(f"--out {args.out}: not a directory")
    if not 320 <= args.width <= 4000:
        parser.error("--width: 320 to 4000 pixels")
    if not Path(CHROMIUM).exists():
        print(f"web_screenshots.py: no {CHROMIUM}: apt-get install chromium", file=sys.stderr)
        return 2
    processes: list[Process] = []
    with tempfile.TemporaryDirectory(prefix="lineproto-shots-") as work:
        try:
            url = start_stack(Path(work), processes)
            shots = take_screenshots(url, args.out, args.width)
        except Failure as failure:
            print(f"web_screenshots.py: {failure}", file=sys.stderr)
            return 2
        finally:
            for process in reversed(processes):
                process.stop()
    for shot in shots:
        print(shot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
