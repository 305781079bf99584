"""Cross-protocol lines: what counts as HTTP, and that no command of ours does."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lineproto.commands import build_services
from lineproto.wire.sniff import looks_like_http

HTTP_LINES = [
    "GET / HTTP/1.1",
    "GET /",
    "POST / HTTP/1.1",
    "post /api?x=1 HTTP/1.0",
    "HEAD /index.html HTTP/1.1",
    "PUT /x HTTP/1.1",
    "OPTIONS * HTTP/1.1",
    "CONNECT 127.0.0.1:36000 HTTP/1.1",
    "DELETE /bets HTTP/1.1",
    "PRI * HTTP/2.0",
    "GET http://127.0.0.1:36000/ HTTP/1.1",
    "Host: 127.0.0.1:36000",
    "Content-Type: text/plain;charset=UTF-8",
    "content-length: 42",
    "Origin: https://evil.example",
    "Sec-Fetch-Mode:no-cors",
    "WHATEVER /x HTTP/1.1",
]

NOT_HTTP = [
    "USER guest",
    "BET RED 10",
    "BET SPLIT 17-18 5",
    "READ G10001 - Dog in the yard: no access",
    "READ G10001 5983 2026-12-01T10:30",
    "PASS my: password",
    "HELP GET",
    "12:30",
    "",
    "NOOP",
]


@pytest.mark.parametrize("line", HTTP_LINES)
def test_http_lines_are_recognised(line):
    assert looks_like_http(line)


@pytest.mark.parametrize("line", NOT_HTTP)
def test_our_lines_are_not_http(line):
    assert not looks_like_http(line)


VERBS = sorted(command.verb for command in build_services().table)


@given(verb=st.sampled_from(VERBS), args=st.text(alphabet=st.characters(blacklist_categories=("Cc",)), max_size=60))
def test_no_command_of_ours_is_taken_for_http(verb, args):
    line = f"{verb} {args}".rstrip()
    if " HTTP/" in line:  # a reason text may hold anything; only its last word decides
        return
    assert not looks_like_http(line)
