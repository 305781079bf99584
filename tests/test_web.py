"""The web gateway's REST resources, through a real ``client.py web`` process in front of a real daemon.

Every test talks HTTP over a socket (http.client) to a gateway subprocess started with
``--notify`` (its readiness signal), in front of a daemon of the ``engine`` fixture; nothing is
mocked. docs/WEB.md is the contract checked here.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import ssl
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from cluster import stop_process

from lineproto.domain.roulette import (
    AMERICAN,
    InsufficientChips,
    PlacementError,
    Table,
    parse_bet,
    pocket_properties,
)
from lineproto.web import replies
from lineproto.web.statuses import http_status
from lineproto.wire.reply import Event
from test_package import installed  # noqa: F401 - the fixture: a venv with only the wheel

RED = {1, 3, 5, 7, 9, 12, 14, 16, 18, 19, 21, 23, 25, 27, 30, 32, 34, 36}
DAVE = ("dave", "hunter2")
CAROL = ("carol", "secret")


class Gateway:
    """A ``client.py web`` subprocess in front of ``daemon``; stopped with :meth:`stop`."""

    def __init__(self, tmp_path: Path, daemon, *args: str):
        stamp = time.monotonic_ns()
        self.notify = tmp_path / f"web-notify-{stamp}"
        self.log_path = tmp_path / f"web-{stamp}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - open while the gateway runs
        command = [
            sys.executable,
            str(ROOT / "client.py"),
            "web",
            "--daemon",
            f"{daemon.host}:{daemon.port}",
            "--port",
            "0",
            "--notify",
            str(self.notify),
            *args,
        ]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not self.notify.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited {self.process.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway not ready: {self.log()}")
            time.sleep(0.01)
        host, port = self.notify.read_text().strip().rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.origin = f"http://{host}:{port}"
        #: The client side's TLS context when the gateway serves HTTPS (a test sets it).
        self.tls: ssl.SSLContext | None = None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, SIGKILL after 10 s (scripts/cluster.py's stop_process); the exit status."""
        status = stop_process(self.process)
        self._log.close()
        return status


class Answer:
    """One HTTP response: status, headers, the body parsed as JSON (None when it is not)."""

    def __init__(self, response: http.client.HTTPResponse):
        self.status = response.status
        self.headers = response.headers
        self.raw = response.read()
        try:
            self.json = json.loads(self.raw)
        except ValueError:
            self.json = None

    @property
    def error(self) -> tuple[int, str]:
        assert self.json is not None and "error" in self.json, self.raw
        return self.json["error"]["code"], self.json["error"]["text"]

    def __repr__(self) -> str:
        return f"<{self.status} {self.raw[:200]!r}>"


class Browser:
    """An HTTP client with a cookie jar (``lp_session``) and, after :meth:`login`, the CSRF token."""

    def __init__(self, gateway: Gateway, auth: tuple[str, str] | None = None):
        self.gateway = gateway
        self.auth = auth
        self.cookies: dict[str, str] = {}
        self.csrf: str | None = None

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        csrf: bool = True,
    ) -> Answer:
        sent = dict(headers or {})
        if body is not None:
            raw = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        if self.auth is not None:
            token = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            sent.setdefault("Authorization", f"Basic {token}")
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if csrf and self.csrf and method in ("POST", "DELETE"):
            sent.setdefault("X-CSRF-Token", self.csrf)
        if self.gateway.tls is not None:
            connection = http.client.HTTPSConnection(
                self.gateway.host, self.gateway.port, timeout=30, context=self.gateway.tls
            )
        else:
            connection = http.client.HTTPConnection(self.gateway.host, self.gateway.port, timeout=30)
        try:
            connection.request(method, path, body=raw, headers=sent)
            answer = Answer(connection.getresponse())
        finally:
            connection.close()
        for header in answer.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                if morsel.value and morsel["max-age"] != "0":
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        return answer

    def get(self, path: str, **kw) -> Answer:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: object = None, **kw) -> Answer:
        return self.request("POST", path, body, **kw)

    def delete(self, path: str, **kw) -> Answer:
        return self.request("DELETE", path, **kw)

    def login(self, user: str, password: str | None = None) -> Answer:
        answer = self.post("/login", {"user": user, **({"password": password} if password is not None else {})})
        if answer.status == 200:
            self.csrf = answer.json["csrf"]
        return answer


@pytest.fixture
def gateway(tmp_path, start_daemon):
    """``gateway(*gateway_args, daemon_args=(), daemon=None)`` -> a running :class:`Gateway` (and its daemon)."""
    started = []

    def start(*args: str, daemon_args: tuple[str, ...] = (), daemon=None) -> Gateway:
        if daemon is None:
            daemon = start_daemon(*daemon_args, users=True)
        gw = Gateway(tmp_path, daemon, *args)
        gw.daemon = daemon
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


def expected_pocket(number: str) -> dict:
    """What /wheel must say of ``number`` by the rules (independent of the daemon's code)."""
    if number in ("0", "00"):
        return {"number": number, "color": "green", "even": None, "high": None, "dozen": None, "column": None}
    n = int(number)
    return {
        "number": number,
        "color": "red" if n in RED else "black",
        "even": n % 2 == 0,
        "high": n >= 19,
        "dozen": (n - 1) // 12 + 1,
        "column": (n - 1) % 3 + 1,
    }


# --------------------------------------------------------------------------
# The wheels: no login
# --------------------------------------------------------------------------


def test_the_wheels_spin_without_a_login_with_the_rules_of_each_pocket(gateway):
    gw = gateway()
    browser = Browser(gw)
    for kind, pockets in (("american", {"00", *map(str, range(37))}), ("european", set(map(str, range(37))))):
        for _ in range(40):
            answer = browser.get(f"/wheel/{kind}")
            assert answer.status == 200, answer
            assert answer.json["number"] in pockets
            assert answer.json == expected_pocket(answer.json["number"])
    unknown = browser.get("/wheel/spanish")
    assert unknown.status == 404 and unknown.error[0] == 0


def test_no_page_elsewhere_may_frame_the_gateway_nor_cache_its_answers(gateway):
    gw = gateway()
    for answer in (Browser(gw).get("/wheel/american"), Browser(gw).get("/player"), Browser(gw, DAVE).get("/bet")):
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Cache-Control"] == "no-store"


# --------------------------------------------------------------------------
# Authentication, sessions, CSRF, Origin
# --------------------------------------------------------------------------


def test_basic_authentication_none_wrong_and_right(gateway):
    gw = gateway()
    none = Browser(gw).get("/player")
    assert none.status == 401 and none.headers["WWW-Authenticate"].startswith('Basic realm="lineproto"')
    assert none.error[0] == 0
    wrong = Browser(gw, ("dave", "wrong")).get("/player")
    assert wrong.status == 401 and wrong.headers["WWW-Authenticate"].startswith('Basic realm="lineproto"')
    assert wrong.error == (530, "Login incorrect")
    garbled = Browser(gw).get("/player", headers={"Authorization": "Basic !!!"})
    assert garbled.status == 401 and "WWW-Authenticate" in garbled.headers
    right = Browser(gw, DAVE).get("/player")
    assert right.status == 200, right
    assert right.json == {
        "user": "dave",
        "wheel": "american",
        "bankroll": 1000,
        "rounds": 0,
        "open_bet_count": 0,
        "open_bet_chips": 0,
    }


def test_a_login_sets_a_strict_httponly_cookie_and_the_session_needs_its_csrf_token(gateway):
    gw = gateway()
    browser = Browser(gw)
    assert browser.get("/session").status == 401
    answer = browser.login(*DAVE)
    assert answer.status == 200, answer
    assert answer.json["user"] == "dave" and answer.json["roles"] == ["player"] and len(answer.json["csrf"]) >= 32
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("lp_session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP here; HTTPS sets it
    assert browser.get("/session").json == answer.json
    assert browser.get("/player").json["user"] == "dave"
    # a change without the token, with a wrong one, from another origin: refused, nothing placed
    missing = browser.post("/bet", {"bet": "RED", "amount": 5}, csrf=False)
    assert missing.status == 403 and missing.error[0] == 0
    forged = browser.post("/bet", {"bet": "RED", "amount": 5}, csrf=False, headers={"X-CSRF-Token": "x" * 43})
    assert forged.status == 403
    elsewhere = browser.post("/bet", {"bet": "RED", "amount": 5}, headers={"Origin": "http://evil.example"})
    assert elsewhere.status == 403 and "origin" in elsewhere.error[1]
    assert browser.get("/bet").json["bets"] == []
    # the gateway's own origin, with the token: placed
    placed = browser.post("/bet", {"bet": "RED", "amount": 5}, headers={"Origin": gw.origin})
    assert placed.status == 201, placed
    assert browser.post("/logout").status == 200
    ended = browser.get("/player", headers={"Cookie": f"lp_session={answer.headers['Set-Cookie'].split(';')[0][11:]}"})
    assert ended.status == 401 and "WWW-Authenticate" not in ended.headers  # the page logs in again itself
    assert browser.get("/session").status == 401


def test_basic_requests_from_another_origin_are_refused_too(gateway):
    gw = gateway()
    answer = Browser(gw, DAVE).post("/wheel", headers={"Origin": "http://evil.example"})
    assert answer.status == 403
    assert Browser(gw, DAVE).get("/player").json["rounds"] == 0


def test_allow_origin_replaces_the_default(gateway):
    gw = gateway("--allow-origin", "https://casino.example")
    browser = Browser(gw, DAVE)
    assert browser.post("/wheel", headers={"Origin": "https://casino.example"}).status == 200
    assert browser.post("/wheel", headers={"Origin": gw.origin}).status == 403


def test_a_form_login_and_a_guest(gateway):
    gw = gateway()
    browser = Browser(gw)
    answer = browser.post("/login", raw=b"user=guest", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status == 200 and answer.json["user"] == "guest" and answer.json["roles"] == ["player"]
    browser.csrf = answer.json["csrf"]
    assert browser.get("/player").json["bankroll"] == 100
    wrong = Browser(gw).login("dave", "nope")
    assert wrong.status == 401 and wrong.error == (530, "Login incorrect")
    assert "WWW-Authenticate" not in wrong.headers  # a page's form: no browser dialog


def test_an_idle_session_ends_and_its_daemon_connection_closes(gateway, connect):
    gw = gateway("--session-idle", "0.3")
    browser = Browser(gw)
    assert browser.login(*DAVE).status == 200
    watcher = connect(gw.daemon.port)
    wait_connections(watcher, 1, "the idle session's connection stayed open")  # the watcher's alone
    assert browser.get("/session").status == 401


def test_a_session_outlives_the_daemons_idle_timeout_by_the_keepalive(gateway):
    gw = gateway("--keepalive", "0.2", daemon_args=("--idle-timeout", "1"))
    browser = Browser(gw)
    assert browser.login(*DAVE).status == 200
    time.sleep(2.5)  # what is tested is time passing: 2.5 idle timeouts of the daemon
    assert browser.get("/player").status == 200
    assert _idle_timeouts(gw) == 0


def _idle_timeouts(gw: Gateway) -> int:
    from conftest import RawConnection

    with RawConnection(gw.daemon.port) as raw:
        raw.reply()
        reply = raw.command("STAT")
    return int(next(line for line in reply.lines if line.startswith("idle-timeouts: ")).split()[1])


def daemon_connections(watcher) -> int:
    """STAT's ``connections`` on the watcher's connection (itself included)."""
    reply = watcher.command("STAT")
    return int(next(line for line in reply.lines if line.startswith("connections: ")).split()[1])


def wait_connections(watcher, count: int, why: str) -> None:
    """Until the daemon counts ``count`` connections (a closed one is counted down as the daemon reads its end)."""
    deadline = time.monotonic() + 10
    while daemon_connections(watcher) != count:
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


def test_basic_requests_share_one_daemon_connection_until_it_is_idle(gateway, connect):
    gw = gateway("--basic-idle", "0.5")
    watcher = connect(gw.daemon.port)
    dave = Browser(gw, DAVE)
    for _ in range(5):
        assert dave.get("/player").status == 200
    assert dave.post("/bet", {"bet": "RED", "amount": 5}).status == 201
    assert daemon_connections(watcher) == 2  # one for the six requests of these credentials, and the watcher
    wait_connections(watcher, 1, "the idle Basic connection stayed open")
    assert dave.get("/bet").json["staked"] == 5  # a new login, the same table


def test_wrong_basic_credentials_are_not_kept(gateway, connect):
    gw = gateway("--basic-idle", "600")
    watcher = connect(gw.daemon.port)
    assert Browser(gw, DAVE).get("/player").status == 200
    for _ in range(3):
        assert Browser(gw, ("dave", "wrong")).get("/player").status == 401
    wait_connections(watcher, 2, "a wrong login's connection was kept")  # dave's (kept 600 s) and the watcher


def test_https_with_a_certificate_marks_the_cookie_secure(gateway, tmp_path):
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "web.pem", tmp_path / "web.key"
    server.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    gw = gateway("--cert", str(cert), "--key", str(key))
    gw.tls = ssl.create_default_context()
    ca.configure_trust(gw.tls)
    browser = Browser(gw)
    assert browser.get("/wheel/american").status == 200
    answer = browser.login(*DAVE)
    assert answer.status == 200 and "Secure" in answer.headers["Set-Cookie"]
    secure_origin = {"Origin": f"https://{gw.host}:{gw.port}"}
    assert browser.post("/bet", {"bet": "RED", "amount": 5}, headers=secure_origin).status == 201
    assert browser.post("/wheel", headers={"Origin": gw.origin}).status == 403  # http:// is another origin


def test_tls_to_the_daemons_tls_port(gateway, start_daemon, tmp_path):
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    cert, key, authority = tmp_path / "d.pem", tmp_path / "d.key", tmp_path / "ca.pem"
    server.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    ca.cert_pem.write_to_path(str(authority))
    daemon = start_daemon("--cert", str(cert), "--key", str(key), "--tls-port", "0", users=True)
    daemon.port = daemon.tls_port  # the gateway connects to the TLS port
    gw = gateway("--daemon-tls", "--daemon-cafile", str(authority), daemon=daemon)
    dave = Browser(gw, DAVE)
    assert dave.get("/player").json["user"] == "dave"
    assert Browser(gw).get("/wheel/european").status == 200
    untrusting = gateway("--daemon-tls", daemon=daemon)  # the system's CAs do not know this one
    answer = Browser(untrusting, DAVE).get("/player")
    assert answer.status == 503 and "certificate" in answer.error[1].lower()


def test_the_proxy_header_goes_before_the_tls_handshake(gateway, start_daemon, tmp_path):
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    cert, key, authority = tmp_path / "d.pem", tmp_path / "d.key", tmp_path / "ca.pem"
    server.private_key_pem.write_to_path(str(key))
    cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    ca.cert_pem.write_to_path(str(authority))
    daemon = start_daemon(
        "--cert", str(cert), "--key", str(key), "--tls-port", "0", "--tls-proxy-protocol", "v2", users=True
    )  # fmt: skip
    daemon.port = daemon.tls_port
    gw = gateway("--daemon-tls", "--daemon-cafile", str(authority), "--daemon-proxy", daemon=daemon)
    assert Browser(gw, DAVE).get("/player").json["user"] == "dave"
    assert "login dave from 127.0.0.1:" in daemon.wait_log("login dave from ")


def test_a_daemon_that_is_not_there_is_503(gateway, start_daemon):
    daemon = start_daemon(users=True)
    gw = gateway(daemon=daemon)
    assert Browser(gw, DAVE).get("/player").status == 200
    daemon.stop()
    for answer in (Browser(gw, DAVE).get("/player"), Browser(gw).get("/wheel/american"), Browser(gw).login("guest")):
        assert answer.status == 503, answer
        assert answer.error[0] == 0


# --------------------------------------------------------------------------
# Roulette
# --------------------------------------------------------------------------


def test_a_list_of_bets_whose_second_is_refused_leaves_bankroll_and_bets_unchanged(gateway):
    gw = gateway()
    dave = Browser(gw, DAVE)
    assert dave.post("/bet", {"bet": "BLACK", "amount": 20}).status == 201
    before_player, before_bets = dave.get("/player").json, dave.get("/bet").json
    for refused, code in (
        ([{"bet": "RED", "amount": 10}, {"bet": "17", "amount": 600}], 534),
        ([{"bet": "RED", "amount": 490}, {"bet": "17", "amount": 495}], 535),
        ([{"bet": "RED", "amount": 10}, {"bet": "FOUR", "amount": 5}], 536),
        ([{"bet": "RED", "amount": 10}, {"bet": "PURPLE", "amount": 5}], 501),
    ):
        answer = dave.post("/bet", refused)
        assert answer.error[0] == code, answer
        assert answer.status == (400 if code == 501 else 409)
        assert answer.error[1].startswith("bet 2 (")
        assert dave.get("/player").json == before_player
        assert dave.get("/bet").json == before_bets
    placed = dave.post("/bet", [{"bet": "red", "amount": 10}, {"bet": "split 18-17", "amount": 5}])
    assert placed.status == 201, placed
    assert placed.json == {
        "placed": [
            {"bet": "RED", "amount": 10, "pays": 1, "slip": 2},
            {"bet": "SPLIT 17-18", "amount": 5, "pays": 17, "slip": 3},
        ],
        "bankroll": 965,
    }
    assert dave.get("/bet").json == {
        "wheel": "american",
        "bets": [
            {"bet": "BLACK", "amount": 20, "pays": 1},
            {"bet": "RED", "amount": 10, "pays": 1},
            {"bet": "SPLIT 17-18", "amount": 5, "pays": 17},
        ],
        "staked": 35,
        "bankroll": 965,
    }
    assert dave.delete("/bet").json == {"cleared": 3, "returned": 35, "bankroll": 1000}
    command = gw.daemon.process.args
    database = command[command.index("--db") + 1]
    checked = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "check", "--db", database], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0 and checked.stdout.startswith("chips conserved"), checked


def test_a_spin_changes_the_bankroll_by_exactly_its_settlement_and_history_and_slips_follow(gateway):
    gw = gateway()
    dave = Browser(gw, DAVE)
    placed = dave.post("/bet", [{"bet": "RED", "amount": 10}, {"bet": "17", "amount": 5}]).json
    assert placed["bankroll"] == 985
    spin = dave.post("/wheel")
    assert spin.status == 200, spin
    result = spin.json
    assert result["pocket"] == expected_pocket(result["pocket"]["number"])
    number = result["pocket"]["number"]
    red_wins, hit = result["pocket"]["color"] == "red", number == "17"
    assert result["bets"] == [
        {"bet": "RED", "amount": 10, "outcome": "win" if red_wins else "lose", "returned": 20 if red_wins else 0},
        {"bet": "17", "amount": 5, "outcome": "win" if hit else "lose", "returned": 180 if hit else 0},
    ]
    returned = sum(bet["returned"] for bet in result["bets"])
    assert result["bankroll"] == 985 + returned and result["net"] == returned - 15
    assert result["rounds"] == 1 and result["nonce"] == 0
    assert dave.get("/player").json["bankroll"] == result["bankroll"]
    history = dave.get("/history?count=5").json
    assert history["player"] == "dave" and len(history["entries"]) == 1
    entry = history["entries"][0]
    assert entry["kind"] == "round" and entry["pocket"] == result["pocket"] and entry["net"] == result["net"]
    assert entry["before"] == 1000 and entry["after"] == result["bankroll"]
    assert [b["slip"] for b in entry["bets"]] == [1, 2] and entry["fair"]["nonce"] == 0
    slip = dave.get("/bet/1").json
    assert slip == {
        "slip": 1,
        "bet": "RED",
        "amount": 10,
        "table": "private",
        "round": 1,
        "state": "win" if red_wins else "lose",
        "returned": 20 if red_wins else 0,
    }
    missing = dave.get("/bet/99")
    assert missing.status == 404 and missing.error == (550, "You have no bet with slip 99")


def test_bad_input_is_refused_with_a_json_error(gateway):
    gw = gateway()
    dave = Browser(gw, DAVE)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    cases = [
        (dave.post("/bet", raw=b"{not json", headers={"Content-Type": "application/json"}), 400, 0),
        (dave.post("/bet", raw=b"bet=RED&amount=5", headers=form), 415, 0),
        (dave.post("/bet", {"bet": "RED", "amount": "5"}), 400, 0),
        (dave.post("/bet", {"bet": "RED", "amount": True}), 400, 0),
        (dave.post("/bet", {"bet": "RED", "amount": 0}), 400, 0),
        (dave.post("/bet", {"bet": 17, "amount": 5}), 400, 0),
        (dave.post("/bet", {"bet": "RED", "amount": 5, "extra": 1}), 400, 0),
        (dave.post("/bet", {"bet": "RED\r\nCRED dave 1000 x", "amount": 5}), 400, 0),
        (dave.post("/bet", {"bet": "RED, 17", "amount": 5}), 400, 0),
        (dave.post("/bet", []), 400, 0),
        (dave.post("/bet", "RED"), 400, 0),
        (dave.post("/bet", [{"bet": "RED", "amount": 1}] * 201), 400, 0),
        (dave.post("/bet", [{"bet": "SPLIT 17-18", "amount": 1}] * 100), 400, 0),  # over the daemon's line
        (dave.post("/bet", raw=b"[" + b" " * 70000 + b"]", headers={"Content-Type": "application/json"}), 413, 0),
        (dave.post("/bet", {"bet": "PURPLE", "amount": 5}), 400, 501),
        (dave.post("/bet", {"bet": "RED", "amount": 501}), 409, 534),
        (dave.get("/bet/abc"), 400, 0),
        (dave.get("/history?count=abc"), 400, 0),
        (dave.get("/history?count=101"), 400, 501),
        (dave.get("/nowhere"), 404, 0),
        (dave.request("PUT", "/bet"), 405, 0),
    ]
    for answer, status, code in cases:
        assert answer.status == status, answer
        assert answer.error[0] == code, answer
    assert dave.get("/player").json["bankroll"] == 1000
    assert dave.get("/bet").json["bets"] == []


def test_a_reader_is_refused_the_player_resources(gateway):
    gw = gateway()
    carol = Browser(gw, CAROL)
    assert carol.get("/player").status == 403
    answer = carol.post("/bet", {"bet": "RED", "amount": 5})
    assert answer.status == 403 and answer.error == (532, "Permission denied: BET needs the player role")


# --------------------------------------------------------------------------
# Shared tables and their events
# --------------------------------------------------------------------------


def read_events(gw: Gateway, browser: Browser, until, ready=None, timeout: float = 20.0) -> list[dict]:
    """The events of ``browser``'s session from ``GET /events`` until one for which ``until(event)`` is true;
    ``ready`` (a threading.Event) is set once the stream is open (its first comment line came)."""
    connection = http.client.HTTPConnection(gw.host, gw.port, timeout=timeout)
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    connection.request("GET", "/events", headers={"Cookie": cookie})
    response = connection.getresponse()
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    assert response.readline().startswith(b": ")
    if ready is not None:
        ready.set()
    events, name = [], None
    try:
        while True:
            line = response.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                name = int(line[7:])
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                assert data["code"] == name
                events.append(data)
                if until(data):
                    return events
    finally:
        connection.close()


def test_two_browsers_at_a_shared_table_see_the_same_round(gateway):
    gw = gateway(daemon_args=("--round-seconds", "1", "--tables", "main:american"))
    dave, guest = Browser(gw), Browser(gw)
    dave.login(*DAVE)
    guest.login("guest")
    listed = dave.get("/tables").json
    assert listed["at"] is None and [t["name"] for t in listed["tables"]] == ["main"]
    assert listed["tables"][0]["state"] == "idle"
    for browser in (dave, guest):
        joined = browser.post("/tables/main/join")
        assert joined.status == 200 and joined.json["text"].startswith("Joined main"), joined
    assert dave.get("/tables").json["at"] == "main"
    assert dave.post("/bet", [{"bet": "RED", "amount": 5}, {"bet": "BLACK", "amount": 5}]).error[0] == 503
    assert dave.post("/wheel").status == 409  # the croupier spins
    first = dave.get("/tables").json["tables"][0]["round"]
    # both streams open during the round they joined in: each sees the next round's result whole
    opened = [threading.Event(), threading.Event()]
    with ThreadPoolExecutor(2) as pool:
        readers = [
            pool.submit(read_events, gw, browser, lambda e: e["code"] == 630 and e["round"] > first, ready)
            for browser, ready in zip((dave, guest), opened, strict=True)
        ]
        assert all(ready.wait(20) for ready in opened)
        assert guest.post("/tables/chat", {"text": "good luck"}).status == 200
        results = [reader.result() for reader in readers]
    chat = {"code": 650, "text": "guest-1: good luck", "player": "guest-1", "said": "good luck"}
    assert chat in results[0] and chat not in results[1]  # not to the sender
    rounds = [events[-1] for events in results]
    assert rounds[0]["round"] == rounds[1]["round"] == first + 1
    assert rounds[0]["pocket"] == rounds[1]["pocket"] == expected_pocket(rounds[0]["pocket"]["number"])
    assert rounds[0]["seed"] == rounds[1]["seed"]
    left = dave.post("/tables/leave")
    assert left.status == 200 and left.json["text"].startswith("Left main")
    assert dave.post("/tables/leave").status == 409


# --------------------------------------------------------------------------
# Meters
# --------------------------------------------------------------------------


def test_a_meter_reader_takes_a_job_submits_a_reading_and_a_reason(gateway):
    roster = ROOT / "docs" / "examples" / "roster.csv"
    gw = gateway(daemon_args=("--roster", str(roster)))
    carol = Browser(gw)
    carol.login(*CAROL)
    assert carol.get("/meter/status").json == {"user": "carol", "my_readings": 0, "all_readings": 0}
    assert carol.post("/meter/job").json == {"meter": "G10001", "done": False}
    assert carol.post("/meter/reading", {"meter": "G10001", "reading": 5983}).json == {"mine": 1, "total": 1}
    assert carol.post("/meter/job").json == {"meter": "G10002", "done": False}
    reason = carol.post("/meter/reading", {"meter": "G10002", "reason": "Dog in the yard"})
    assert reason.json == {"mine": 2, "total": 2}
    timed = carol.post("/meter/reading", {"meter": "E200003", "reading": "41", "time": "2026-11-22T09:15Z"})
    assert timed.json == {"mine": 3, "total": 3}
    done = carol.post("/meter/job").json
    assert done["meter"] is None and done["done"] is True
    unknown = carol.post("/meter/reading", {"meter": "G99999", "reading": 1})
    assert unknown.status == 404 and unknown.error[0] == 550
    bad = ({"meter": "G10001"}, {"meter": "G10001", "reading": -1}, {"meter": "G10001", "reading": 1, "reason": "x"})
    for body in bad:
        assert carol.post("/meter/reading", body).status == 400
    dave = Browser(gw, DAVE)
    assert dave.post("/meter/job").error == (532, "Permission denied: JOB needs the admin or reader role")


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, says",
    [
        ([], "--daemon"),
        (["--daemon", "nowhere"], "HOST:PORT"),
        (["--daemon", "127.0.0.1:0"], "1-65535"),
        (["--daemon", "127.0.0.1:36000", "--allow-origin", "evil.example"], "origin"),
        (["--daemon", "127.0.0.1:36000", "--key", "k.pem"], "--key needs --cert"),
        (["--daemon", "127.0.0.1:36000", "--cert", "/nonexistent.pem"], "cannot load"),
        (["--daemon", "127.0.0.1:36000", "--notify", "/nonexistent/ready"], "--notify"),
    ],
)
def test_command_line_mistakes_are_one_line_and_status_2(args, says):
    command = [sys.executable, str(ROOT / "client.py"), "web", "--port", "0", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert len(done.stderr.strip().splitlines()) == 1 and says in done.stderr and "Traceback" not in done.stderr


def test_sigterm_ends_every_session_and_exits_0(gateway, connect):
    gw = gateway()
    watcher = connect(gw.daemon.port)
    for user in (DAVE, ("guest", "")):
        assert Browser(gw).login(*user).status == 200
    assert Browser(gw, CAROL).get("/meter/status").status == 200
    assert Browser(gw).get("/wheel/american").status == 200
    assert daemon_connections(watcher) == 5  # two logins, a Basic one, the wheel's guest, the watcher
    assert gw.stop() == 0
    wait_connections(watcher, 1, "the gateway left daemon connections open")
    assert "Traceback" not in gw.log_path.read_text()


def test_sigterm_with_an_open_event_stream_ends_the_stream_and_exits_0(gateway):
    """A quiet ``GET /events`` stream does not hold the stop until its next heartbeat (the gateway's 15 s is
    longer than the 10 s ``stop`` waits before a kill, so a stop held by the stream would not exit 0)."""
    gw = gateway()
    browser = Browser(gw)
    assert browser.login(*DAVE).status == 200
    connection = http.client.HTTPConnection(gw.host, gw.port, timeout=30)
    connection.request("GET", "/events", headers={"Cookie": "; ".join(f"{k}={v}" for k, v in browser.cookies.items())})
    response = connection.getresponse()
    assert response.status == 200 and response.readline().startswith(b": ")
    try:
        assert gw.stop() == 0
        assert response.read().strip() == b""  # the stream ended with the gateway, nothing after its first line
    finally:
        connection.close()


def test_a_port_in_use_is_one_line_and_status_2(gateway):
    gw = gateway()
    done = subprocess.run(
        [sys.executable, str(ROOT / "client.py"), "web", "--daemon", "127.0.0.1:1", "--port", str(gw.port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "cannot listen" in done.stderr


# --------------------------------------------------------------------------
# The domain's all-or-none list (Table.place_all, the daemon's MBET)
# --------------------------------------------------------------------------

BETS = st.sampled_from(["RED", "BLACK", "17", "00", "SPLIT 17-18", "DOZEN2", "BASKET", "HIGH"])


@given(bankroll=st.integers(0, 300), wanted=st.lists(st.tuples(BETS, st.integers(1, 120)), min_size=1, max_size=6))
def test_place_all_places_every_bet_or_leaves_the_table_as_it_was(bankroll, wanted):
    table = Table(bankroll, AMERICAN)
    before = table.snapshot()
    bets = [(parse_bet(words, AMERICAN), amount) for words, amount in wanted]
    try:
        placed = table.place_all(bets)
    except PlacementError as exc:
        assert table.snapshot() == before
        running = bankroll - sum(amount for _, amount in wanted[: exc.position - 1])
        assert isinstance(exc.error, InsufficientChips) and wanted[exc.position - 1][1] > running
        return
    assert [b.slip for b in placed] == list(range(1, len(wanted) + 1))
    assert table.bankroll == bankroll - sum(amount for _, amount in wanted)
    assert [(b.bet.name, b.amount) for b in table.bets] == [(parse_bet(w, AMERICAN).name, a) for w, a in wanted]


# --------------------------------------------------------------------------
# docs/WEB.md's curl examples, replayed
# --------------------------------------------------------------------------

_CONSOLE = re.compile(r"^```console\n(?P<body>.*?)^```", re.M | re.S)
_DOC_ADDRESS = "127.0.0.1:8080"
_MARK = "<<<end of output>>>"
ELLIPSIS = "…"


def console_blocks() -> list[list[tuple[str, list[str]]]]:
    """Each ```console block of docs/WEB.md: its (command, expected output lines)."""
    blocks = []
    for match in _CONSOLE.finditer((ROOT / "docs" / "WEB.md").read_text(encoding="utf-8")):
        steps: list[tuple[str, list[str]]] = []
        for line in match.group("body").splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
        blocks.append(steps)
    return blocks


def like(expected: str, actual: str) -> bool:
    """``actual`` is ``expected`` with each ``…`` standing for any text."""
    return re.fullmatch(".*".join(re.escape(part) for part in expected.split(ELLIPSIS)), actual, re.S) is not None


def same_shape(expected, actual, where: str = "") -> None:
    """The same keys all the way down (list lengths too); ``…`` strings match any text."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), f"{where}: {actual!r} vs {expected!r}"
        for key in expected:
            same_shape(expected[key], actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r} vs {expected!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            same_shape(e, a, f"{where}[{i}]")
    elif isinstance(expected, str) and ELLIPSIS in expected:
        assert isinstance(actual, str) and like(expected, actual), f"{where}: {actual!r} vs {expected!r}"


def check_output(command: str, expected: list[str], actual: str) -> None:
    body = actual
    if expected and expected[0].startswith("HTTP/"):
        head, _, body = actual.partition("\n\n")  # read as text: curl's CR LF are LF here
        status, *headers = head.split("\n")
        assert status.strip() == expected[0], f"{command}: {status!r}"
        names = [tuple(line.split(": ", 1)) for line in headers]
        shown = expected[1 : expected.index("")]
        for line in shown:
            name, value = line.split(": ", 1)
            assert any(n.lower() == name.lower() and like(value, v) for n, v in names), f"{command}: {line!r} in {head}"
        expected = expected[len(shown) + 2 :]
    if not expected:
        assert not body.strip(), f"{command}: {body!r}"
        return
    want, got = json.loads("\n".join(expected)), json.loads(body)
    if "error" in want:
        assert got["error"]["code"] == want["error"]["code"] and like(want["error"]["text"], got["error"]["text"]), (
            f"{command}: {got}"
        )
    same_shape(want, got, command)


def test_the_curl_examples_of_the_web_document(gateway, tmp_path):
    gw = gateway()
    address = f"{gw.host}:{gw.port}"
    blocks = console_blocks()
    assert len(blocks) >= 4
    for steps in blocks:
        script = "".join(f"{command.replace(_DOC_ADDRESS, address)}\necho '{_MARK}'\n" for command, _ in steps)
        done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs = done.stdout.split(_MARK + "\n")
        assert len(outputs) == len(steps) + 1, done.stdout
        for (command, expected), actual in zip(steps, outputs, strict=False):
            check_output(command, expected, actual)


# --------------------------------------------------------------------------
# The installed package: lineproto-web, the page's files
# --------------------------------------------------------------------------


def test_the_installed_gateway_names_its_extra_and_ships_the_page(installed):  # noqa: F811
    """The wheel (test_package's, without dependencies: no aiohttp) has lineproto-web and the static files."""
    done = subprocess.run(
        [installed / "lineproto-web", "--daemon", "127.0.0.1:36000", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "lineproto-web: the web gateway needs the web extra: pip install 'lineproto[web]'"
    ]
    mistake = subprocess.run([installed / "lineproto", "web"], capture_output=True, text=True, timeout=60, cwd="/")
    assert mistake.returncode == 2 and mistake.stderr.startswith("lineproto web: error: ")
    (package,) = installed.parent.glob("lib/python3*/site-packages/lineproto/web")
    shipped = {path.relative_to(package).as_posix() for path in package.rglob("*") if path.is_file()}
    page = ROOT / "lineproto" / "web" / "static"
    wanted = {path.relative_to(page.parent).as_posix() for path in page.rglob("*") if path.is_file()}
    assert wanted <= shipped and "cli.py" in shipped


# --------------------------------------------------------------------------
# In process: the JSON forms and the status table
# --------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["0", "00", *map(str, range(1, 37))])
def test_every_pocket_as_spin_describes_it_becomes_the_json_of_the_rules(number):
    described = pocket_properties(number).describe().split()
    assert replies.pocket(described[0], tuple(described[1:])) == expected_pocket(number)


def test_the_events_of_the_protocol_document_parse_into_their_fields():
    transcript = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    lines = re.findall(r"^ *[0-9.]+ [AB] S: (6[0-9][0-9]) (.*)$", transcript, re.M)
    parsed = [replies.event(Event(int(code), text)) for code, text in lines]
    assert {event["code"] for event in parsed} == {610, 620, 630, 640, 650}
    for event in parsed:
        assert len(event) > 2, event  # every kind's template read its line
    first = next(e for e in parsed if e["code"] == 630)
    assert first["round"] == 1 and first["pocket"] == expected_pocket("16") and first["net"] == 10
    assert (first["staked"], first["returned"]) == (10, 20) and len(first["seed"]) == 64
    chat = next(e for e in parsed if e["code"] == 650)
    assert (chat["player"], chat["said"]) == ("guest-2", "good luck, A")
    no_bets = replies.event(Event(630, "round 3 0 green; no bets; seed " + "a" * 64))
    assert no_bets["pocket"] == expected_pocket("0") and "net" not in no_bets
    unknown = replies.event(Event(699, "something new"))
    assert unknown == {"code": 699, "text": "something new"}


def test_every_refusal_code_of_the_protocol_has_a_status_of_its_class():
    table = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8").split("## 6. Reply codes", 1)[1]
    codes = [int(code) for code in re.findall(r"^\| ([45][0-9][0-9]) \|", table.split("## 7.", 1)[0], re.M)]
    assert {421, 451, 500, 530, 550} <= set(codes)
    for code in codes:
        status = http_status(code)
        assert 400 <= status < 600
        assert (status >= 500 or status in (409, 429)) if code < 500 else status < 500 or status == 501, code
    assert [http_status(c) for c in (421, 451, 452, 450, 501, 530, 532, 535, 550, 599, 499)] == [
        503, 503, 503, 409, 400, 401, 403, 409, 404, 400, 503,
    ]  # fmt: skip
