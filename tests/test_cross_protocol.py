"""Cross-protocol requests: a browser's HTTP request to our port runs nothing.

A page on any web site can make a visitor's browser POST to the daemon with a
``text/plain`` body (no CORS preflight for that). The request line gets one
500 and the connection closes, so neither the headers nor the body (which the
page filled with our commands) are ever read as commands.
"""

import http.server
import shutil
import subprocess
import tempfile
import threading

import pytest

from conftest import RawConnection, stat

ATTACK_BODY = "USER dave\r\nPASS hunter2\r\nBET RED 10\r\nSPIN\r\nBET RED 10\r\nUSER carol\r\nPASS secret\r\nJOB\r\n"


STATE_KEYS = ("bankroll", "open-bets", "rounds", "my-readings", "all-readings")


def dave_and_carol(port: int) -> tuple[dict, dict]:
    """Dave's table and carol's readings, seen by their own logins."""
    with RawConnection(port) as raw:
        raw.reply()
        raw.command("USER dave")
        assert raw.command("PASS hunter2").code == 230
        dave = {key: value for key, value in stat(raw).items() if key in STATE_KEYS}
        raw.command("USER carol")
        assert raw.command("PASS secret").code == 230
        carol = {key: value for key, value in stat(raw).items() if key in STATE_KEYS}
    return dave, carol


def test_an_http_post_gets_one_reply_and_runs_nothing(daemon):
    before = dave_and_carol(daemon.port)
    request = (
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(ATTACK_BODY)}\r\n\r\n{ATTACK_BODY}"
    )
    with RawConnection(daemon.port) as raw:
        assert raw.reply().code == 220
        raw.send(request.encode())
        reply = raw.reply()
        assert reply.code == 500 and "not a web server" in reply.lines[0]
        assert raw.read_all() == b""  # nothing else: closed
    assert dave_and_carol(daemon.port) == before
    assert "closed: an HTTP line (POST)" in daemon.wait_log("an HTTP line")


@pytest.mark.parametrize(
    "first_line",
    [
        "GET / HTTP/1.1",
        "HEAD / HTTP/1.0",
        "OPTIONS * HTTP/1.1",
        "CONNECT 127.0.0.1:1 HTTP/1.1",
        "Host: 127.0.0.1",
        "PUT /x HTTP/1.1",
        "PRI * HTTP/2.0",
    ],
)
def test_any_http_line_closes_the_connection(shared, first_line):
    with RawConnection(shared.port) as raw:
        raw.reply()
        raw.send(f"{first_line}\r\nUSER guest\r\nBET RED 10\r\n".encode())
        assert raw.reply().code == 500
        assert raw.read_all() == b""


def test_after_login_an_http_line_still_closes(shared):
    with RawConnection(shared.port) as raw:
        raw.reply()
        assert raw.command("USER guest").code == 230
        raw.send(b"GET /favicon.ico HTTP/1.1\r\nBET RED 10\r\n")
        assert raw.reply().code == 500
        assert raw.read_all() == b""


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PAGE = """<!doctype html><title>pending</title>
<script>
fetch("http://127.0.0.1:{port}/", {{method: "POST", mode: "no-cors",
      headers: {{"Content-Type": "text/plain"}}, body: {body!r}}})
  .then(() => {{ document.title = "sent"; }}, (e) => {{ document.title = "sent: " + e; }});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_a_real_browser_page_cannot_drive_the_daemon(daemon, tmp_path):
    before = dave_and_carol(daemon.port)
    page = PAGE.format(port=daemon.port, body=ATTACK_BODY).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=web.serve_forever, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory() as profile:
            result = subprocess.run(
                [
                    CHROMIUM,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    f"--user-data-dir={profile}",
                    "--virtual-time-budget=10000",
                    "--dump-dom",
                    f"http://127.0.0.1:{web.server_address[1]}/",
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
    finally:
        web.shutdown()
        web.server_close()
    assert "<title>sent" in result.stdout, result.stderr[-2000:]  # the page's fetch went out and settled
    daemon.wait_log("closed: an HTTP line (POST)")  # it reached the daemon...
    assert dave_and_carol(daemon.port) == before  # ...and changed nothing
