"""The web page in headless Chromium (Playwright), through a real gateway process, in front of a real daemon.

Each test starts a daemon (on both engines, the ``engine`` fixture) and a ``client.py web`` gateway in front
of it (the ``gateway`` fixture of test_web), drives the page as a user does (clicks, typing, the keyboard)
and checks what the page shows against what the daemon itself says over the line protocol (STAT, HIST,
DUMP). One Chromium per module; every test gets fresh browser contexts (cookies of their own), closed after
it.
"""

import re
import sys
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from conftest import ROOT, TEST_USERS, Daemon
from lineproto.client import Client
from lineproto.wire.shapes import HistoryRound
from test_web import Gateway, gateway  # noqa: F401 - the fixture

sys.path.insert(0, str(ROOT / "scripts"))
from web_screenshots import CHROMIUM, CHROMIUM_ARGS  # the browser as the screenshots script starts it

ROSTER = ROOT / "docs" / "examples" / "roster.csv"
#: How long the page may take to show what the daemon replied (the machine is shared; nothing waits this long
#: when all is well).
SHOWN = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium (Debian's) for the module; closed at its end."""
    expect.set_options(timeout=SHOWN)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def web(gateway) -> tuple[Daemon, Gateway]:  # noqa: F811 - the fixture of test_web
    """A daemon with the test users, the example roster and short shared-table rounds, and a gateway in front."""
    gw = gateway(daemon_args=("--roster", str(ROSTER), "--round-seconds", "1"))
    return gw.daemon, gw


@pytest.fixture
def contexts(browser) -> Iterator:
    """``new_context(**options)`` -> a fresh browser context (its own cookies); every one closed after the test."""
    opened: list[BrowserContext] = []

    def new_context(**options) -> BrowserContext:
        context = browser.new_context(**options)
        context.set_default_timeout(SHOWN)
        opened.append(context)
        return context

    yield new_context
    for context in opened:
        context.close()


def open_page(contexts, gw: Gateway, **options) -> Page:
    page = contexts(**options).new_page()
    page.goto(gw.origin + "/")
    expect(page.locator("#login-form")).to_be_visible()
    return page


def log_in(page: Page, user: str) -> None:
    """Log in through the form (the guest has no password)."""
    page.fill("#login-user", user)
    page.fill("#login-password", TEST_USERS[user][2] if user in TEST_USERS else "")
    page.click("#login-submit")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#whoami")).to_contain_text(user)


def bankroll(page: Page) -> int:
    return int(page.inner_text("#bankroll"))


def daemon_client(daemon: Daemon, user: str) -> Client:
    client = Client(daemon.host, daemon.port)
    client.login(user, TEST_USERS[user][2])
    return client


def test_two_clicked_bets_and_a_spin_change_the_bankroll_by_exactly_the_settlement(web, contexts):
    daemon, gw = web
    page = open_page(contexts, gw)
    log_in(page, "dave")
    expect(page.locator("#bankroll")).to_have_text("1000")
    start = bankroll(page)

    page.click(".chip[data-chip='25']")
    page.click("#layout button[data-bet='RED']")
    expect(page.locator("#open-bets li")).to_have_count(1)
    page.click(".chip[data-chip='5']")
    page.click("#layout button[data-bet='SPLIT 17-18']")
    expect(page.locator("#open-bets li")).to_have_count(2)
    expect(page.locator("#open-bets")).to_contain_text("RED for 25")
    expect(page.locator("#open-bets")).to_contain_text("SPLIT 17-18 for 5")
    expect(page.locator("#bankroll")).to_have_text(str(start - 30))
    with daemon_client(daemon, "dave") as client:
        status = client.stat()
        assert (status["bankroll"], status["open-bet-count"], status["open-bet-chips"]) == (str(start - 30), "2", "30")

    page.click("#spin")
    net = int(page.locator("#result-net").get_attribute("data-net"))
    shown = bankroll(page)
    assert shown == start + net
    with daemon_client(daemon, "dave") as client:
        last = client.history(1).entries[0]
        status = client.stat()
    assert isinstance(last, HistoryRound)
    assert (last.before, last.after, last.net) == (start, shown, net)
    assert status["bankroll"] == str(shown)
    assert status["open-bet-count"] == "0"
    expect(page.locator("#open-bets")).to_contain_text("No open bets")
    expect(page.locator("#history li").first).to_contain_text(f"bankroll {start} -> {shown}")


def test_a_refused_bet_shows_the_daemons_text_next_to_the_layout(web, contexts):
    daemon, gw = web
    page = open_page(contexts, gw)
    log_in(page, "dave")
    page.fill("#bet-text", "SPLIT 1-5")
    page.press("#bet-text", "Enter")
    expected = _refusal_text(daemon, "dave", "BET SPLIT 1-5 5")
    expect(page.locator("#bet-message")).to_have_text(expected)
    expect(page.locator("#bet-message")).to_have_class(re.compile("refused"))
    expect(page.locator("#bankroll")).to_have_text("1000")


def _refusal_text(daemon: Daemon, user: str, line: str) -> str:
    """The text of the daemon's own reply to ``line`` (a refusal), from a line-protocol connection."""
    with Client(daemon.host, daemon.port) as client:
        client.login(user, TEST_USERS[user][2])
        client.send_line(line)
        reply = client.read_reply()
    assert reply.code >= 500, reply
    return reply.text


ROUND_RESULT = re.compile(r"630 round (\d+) (\S+ [a-z]+)")


def settled_rounds(page: Page) -> dict[str, str]:
    """The rounds the page's table feed showed settled: round id -> pocket and colour (``16 red``)."""
    return {
        match[1]: match[2] for text in page.locator("#feed li").all_inner_texts() if (match := ROUND_RESULT.match(text))
    }


def join_main(page: Page) -> None:
    """Sit at the table ``main``, once the page's event stream is open (so no event of the table is missed)."""
    expect(page.locator("#app")).to_have_attribute("data-events", "live")
    page.click("#tab-shared")
    page.click("#tables button[data-table='main']")
    expect(page.locator("#seated")).to_have_text("main")


def test_a_second_browser_at_the_same_shared_table_sees_the_same_result(web, contexts):
    daemon, gw = web
    dave = open_page(contexts, gw)
    log_in(dave, "dave")
    guest = open_page(contexts, gw)
    log_in(guest, "guest")
    join_main(dave)
    join_main(guest)
    expect(dave.locator("#feed")).to_contain_text("joined main (2 seated)")

    # Dave bets on the table's round (the layout bets wherever the player sits); bets refused between
    # rounds ("no more bets") are tried again at the next one.
    dave.click("#tab-table")
    dave.click(".chip[data-chip='5']")
    expect(dave.locator("#spin")).to_be_disabled()
    deadline = time.monotonic() + SHOWN / 1000
    while True:
        dave.click("#layout button[data-bet='RED']")
        dave.wait_for_function("() => document.querySelector('#bet-message').textContent !== ''")
        if dave.inner_text("#bet-message").startswith("Placed"):
            break
        assert "no more bets" in dave.inner_text("#bet-message")
        assert time.monotonic() < deadline
    start = 1000 - 5
    # The round the bet is settled in: dave's own 630 says what he staked.
    dave_feed = dave.locator("#feed li", has_text=re.compile(r"^630 .*staked 5,"))
    expect(dave_feed).to_have_count(1)
    dave_text = dave_feed.inner_text()
    round_id, pocket = ROUND_RESULT.match(dave_text).groups()
    expect(guest.locator("#feed li", has_text=re.compile(rf"^630 round {round_id} "))).to_have_count(1)
    assert settled_rounds(guest)[round_id] == pocket
    expect(dave.locator("#result .pocket")).to_have_text(pocket.split()[0])
    expect(dave.locator("#result")).to_contain_text(f"Round {round_id} at main")

    guest.click("#tab-shared")
    guest.fill("#chat-text", "good luck, dave")
    guest.press("#chat-text", "Enter")
    expect(guest.locator("#chat-message")).to_have_text("Said to 1 at main")
    expect(dave.locator("#feed li", has_text=re.compile(r"^650 guest-\d+: good luck, dave$"))).to_have_count(1)

    net = int(re.search(r"net ([+-]?\d+)", dave_text)[1])
    expect(dave.locator("#bankroll")).to_have_text(str(start + 5 + net))
    with daemon_client(daemon, "dave") as client:
        last = client.history(1).entries[0]
    assert isinstance(last, HistoryRound)
    assert (last.table, str(last.round), last.net) == ("main", round_id, net)


def test_the_meter_page_takes_a_job_and_submits_a_reading_or_a_reason(web, contexts):
    daemon, gw = web
    page = open_page(contexts, gw)
    log_in(page, "carol")
    expect(page.locator("#tab-table")).to_be_hidden()
    expect(page.locator("#panel-meter")).to_be_visible()

    page.click("#job")
    expect(page.locator("#job-text")).to_contain_text("G10001 is yours to read")
    expect(page.locator("#reading-meter")).to_have_value("G10001")
    # A refusal shows the daemon's own text where the reading was submitted.
    page.fill("#reading-meter", "G99999")
    page.fill("#reading-value", "5983")
    page.press("#reading-value", "Enter")
    expect(page.locator("#reading-message")).to_have_text(_refusal_text(daemon, "carol", "READ G99999 5983"))
    page.fill("#reading-meter", "G10001")
    page.fill("#reading-value", "5983")
    page.press("#reading-value", "Enter")
    expect(page.locator("#reading-message")).to_contain_text("Accepted: you have read 1 out of 1 readings")

    page.click("#job")
    expect(page.locator("#reading-meter")).to_have_value("G10002")
    page.check("input[name=kind][value=reason]")
    page.fill("#reading-reason", "Dog in the yard")
    page.press("#reading-reason", "Enter")
    expect(page.locator("#reading-message")).to_contain_text("you have read 2 out of 2 readings")
    expect(page.locator("#meter-status dd[data-key='my_readings']")).to_have_text("2")

    with daemon_client(daemon, "root") as client:
        dump = client.dump()
    assert any(line.startswith("G10001=5983@") and line.endswith("[]carol") for line in dump), dump
    assert any(line.startswith("G10002=-1@") and line.endswith("[Dog in the yard]carol") for line in dump), dump


def test_the_terminal_pane_speaks_the_line_protocol_over_the_websocket(web, contexts):
    _daemon, gw = web
    page = open_page(contexts, gw)
    log_in(page, "guest")
    page.click("#tab-terminal")
    page.click("#term-connect")
    expect(page.locator("#term-output")).to_contain_text("220 lineproto")
    page.fill("#term-input", "NOOP")
    page.press("#term-input", "Enter")
    expect(page.locator("#term-output")).to_contain_text("200 OK")
    page.fill("#term-input", "USER guest")
    page.press("#term-input", "Enter")
    expect(page.locator("#term-output")).to_contain_text("230 Welcome, Guest")
    page.click("#term-disconnect")
    expect(page.locator("#term-input")).to_be_disabled()
    expect(page.locator("#term-output")).to_contain_text("connection closed")


def test_a_shared_european_table_gets_the_european_layout_and_log_out_ends_the_session(web, contexts):
    _daemon, gw = web
    page = open_page(contexts, gw)
    log_in(page, "guest")
    expect(page.locator("#layout button[data-bet='00']")).to_have_count(1)
    expect(page.locator("#app")).to_have_attribute("data-events", "live")
    page.click("#tab-shared")
    page.click("#tables button[data-table='euro']")
    expect(page.locator("#seated")).to_have_text("euro")
    page.click("#tab-table")
    expect(page.locator("#wheel")).to_have_text("european")
    expect(page.locator("#layout button[data-bet='00']")).to_have_count(0)
    expect(page.locator("#layout button[data-bet='FOUR']")).to_have_count(1)
    expect(page.locator("#spin")).to_be_disabled()
    page.click("#tab-shared")
    page.click("#leave")
    expect(page.locator("#seated")).to_have_text("(not seated)")
    expect(page.locator("#layout button[data-bet='00']")).to_have_count(1)

    page.click("#logout")
    expect(page.locator("#login-form")).to_be_visible()
    assert page.evaluate("async () => (await fetch('/session')).status") == 401


def press_tab_until(page: Page, selector: str, limit: int = 300) -> None:
    """Press Tab (only the keyboard) until the element ``selector`` has the focus."""
    for _ in range(limit):
        if page.evaluate("(s) => document.activeElement === document.querySelector(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} never got the focus by Tab")


def test_bets_are_placed_with_the_keyboard_alone(web, contexts):
    daemon, gw = web
    page = open_page(contexts, gw)
    expect(page.locator("#login-user")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("dave")
    page.keyboard.press("Tab")
    page.keyboard.type(TEST_USERS["dave"][2])
    page.keyboard.press("Enter")
    expect(page.locator("#app")).to_be_visible()

    press_tab_until(page, ".chip[data-chip='25']")
    page.keyboard.press("Enter")
    expect(page.locator(".chip[data-chip='25']")).to_have_attribute("aria-pressed", "true")
    press_tab_until(page, "#layout button[data-bet='17']")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")  # the focus is visible
    page.keyboard.press("Enter")
    expect(page.locator("#open-bets")).to_contain_text("17 for 25")
    page.keyboard.press("ArrowRight")  # the arrows walk the layout: the strip right of 17 is the split
    expect(page.locator("#layout button[data-bet='SPLIT 17-18']")).to_be_focused()
    page.keyboard.press("Space")
    expect(page.locator("#open-bets")).to_contain_text("SPLIT 17-18 for 25")
    page.keyboard.press("ArrowDown")
    expect(page.locator("#layout button[data-bet='CORNER 17-18-20-21']")).to_be_focused()
    with daemon_client(daemon, "dave") as client:
        assert client.stat()["open-bet-chips"] == "50"

    press_tab_until(page, "#spin")
    page.keyboard.press("Enter")
    expect(page.locator("#result-net")).to_be_visible()
    expect(page.locator("#open-bets")).to_contain_text("No open bets")


def no_horizontal_scroll(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_at_phone_width_every_tab_fits_without_horizontal_scroll(web, contexts):
    _daemon, gw = web
    page = open_page(contexts, gw, viewport={"width": 360, "height": 740})
    assert no_horizontal_scroll(page)
    log_in(page, "root")
    page.click(".chip[data-chip='100']")
    page.click("#layout button[data-bet='CORNER 17-18-20-21']")
    expect(page.locator("#open-bets")).to_contain_text("CORNER 17-18-20-21 for 100")
    assert no_horizontal_scroll(page)
    page.click("#spin")
    expect(page.locator("#result-net")).to_be_visible()
    assert no_horizontal_scroll(page)
    # Each tab with what makes it widest shown: the tables and a feed of long lines (64-hex seeds), the meter
    # status, the terminal's greeting.
    filled = {
        "#tab-shared": "#feed li >> text=/^610 /",
        "#tab-meter": "#meter-status dd[data-key='all_readings']",
        "#tab-terminal": "#term-output >> text=/220 lineproto/",
    }
    for tab, shown in filled.items():
        page.click(tab)
        expect(page.locator(tab)).to_have_attribute("aria-selected", "true")
        if tab == "#tab-shared":
            expect(page.locator("#app")).to_have_attribute("data-events", "live")
            page.click("#tables button[data-table='main']")
        if tab == "#tab-terminal":
            page.click("#term-connect")
        expect(page.locator(shown).first).to_be_visible()
        assert no_horizontal_scroll(page), tab
    # The layout's three columns of numbers are side by side, not wrapped under each other.
    page.click("#tab-table")
    one = page.locator("#layout button[data-bet='1']").bounding_box()
    three = page.locator("#layout button[data-bet='3']").bounding_box()
    assert one and three and one["y"] == three["y"] and three["x"] + three["width"] <= 360


def test_an_ended_session_brings_back_the_login_form_where_the_user_acts(gateway, contexts, connect):  # noqa: F811
    gw = gateway("--session-idle", "0.5", daemon_args=("--roster", str(ROSTER)))
    page = open_page(contexts, gw)
    log_in(page, "carol")
    watcher = connect(gw.daemon.port)

    def connections() -> int:
        status = dict(line.split(": ", 1) for line in watcher.command("STAT").lines[1:-1])
        return int(status["connections"])

    assert connections() == 2  # the page's session and the watcher
    deadline = time.monotonic() + 10
    while connections() > 1:  # the gateway ends the idle session and closes its daemon connection
        assert time.monotonic() < deadline, "the idle session stayed"
        time.sleep(0.05)
    page.click("#job")
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#login-message")).to_have_text("Your session ended: log in again.")
    log_in(page, "carol")
    page.click("#job")
    expect(page.locator("#job-text")).to_contain_text("is yours to read")


def test_bet_again_places_the_last_spins_bets_all_or_none(web, contexts):
    daemon, gw = web
    page = open_page(contexts, gw)
    log_in(page, "dave")
    expect(page.locator("#rebet")).to_be_disabled()
    page.click(".chip[data-chip='100']")
    page.click("#layout button[data-bet='RED']")
    page.click("#layout button[data-bet='17']")
    expect(page.locator("#open-bets li")).to_have_count(2)
    page.click("#spin")
    expect(page.locator("#result-net")).to_be_visible()
    expect(page.locator("#rebet")).to_be_enabled()

    # Bet again with room for both: both placed, in one go.
    after_spin = bankroll(page)
    page.click("#rebet")
    expect(page.locator("#bet-message")).to_contain_text("Placed again: RED for 100, 17 for 100")
    expect(page.locator("#bankroll")).to_have_text(str(after_spin - 200))
    with daemon_client(daemon, "dave") as client:
        assert client.stat()["open-bet-chips"] == "200"
    page.click("#clear")
    expect(page.locator("#bankroll")).to_have_text(str(after_spin))

    # Leave room for the first only (100 to 199 chips in hand): the list is refused and nothing is placed.
    for _ in range((after_spin - 100) // 100):
        page.click("#layout button[data-bet='BLACK']")
    left = after_spin - 100 * ((after_spin - 100) // 100)
    expect(page.locator("#bankroll")).to_have_text(str(left))
    page.click("#rebet")
    expect(page.locator("#bet-message")).to_have_class(re.compile("refused"))
    expect(page.locator("#bet-message")).to_contain_text("bet 2 (17 100)")  # the daemon names the refused one
    expect(page.locator("#open-bets")).not_to_contain_text("RED")
    with daemon_client(daemon, "dave") as client:
        status = client.stat()
    assert (status["bankroll"], status["open-bet-chips"]) == (str(left), str(after_spin - left))
    expect(page.locator("#bankroll")).to_have_text(str(left))
