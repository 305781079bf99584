"""Events on the client side: the reply parser keeps 6yz lines apart, Client.events(), Client.listen(), play --table."""

import queue
import subprocess
import sys
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import ROOT, Daemon, write_users_file
from lineproto.client import Client
from lineproto.wire import Reply, ReplyParser
from lineproto.wire.reply import Event, format_event


def test_event_lines_between_replies_never_become_a_reply():
    parser = ReplyParser()
    replies = parser.feed(b"610 round 3 open: bets for 20 s\r\n200 Bet RED for 10\r\n211-Open bets\r\n211 Total")
    assert replies == [Reply(200, ("Bet RED for 10",))]
    assert parser.feed(b" staked 10\r\n620 round 3 no more bets\r\n") == [Reply(211, ("Open bets", "Total staked 10"))]
    assert parser.take_events() == [Event(610, "round 3 open: bets for 20 s"), Event(620, "round 3 no more bets")]
    assert parser.take_events() == []


#: Line text as the daemon sends it: printable, no line breaks (and no surrogates: it is valid UTF-8).
TEXT = st.text(st.characters(min_codepoint=32, blacklist_categories=("Cs", "Cc")), max_size=30)


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("event"), st.integers(600, 699), TEXT),
            st.tuples(st.just("reply"), st.integers(200, 599), TEXT),
        ),
        max_size=12,
    ),
    st.integers(1, 7),
)
def test_events_and_replies_come_out_apart_and_in_order_however_the_bytes_are_cut(items, cut):
    wire = b""
    for kind, code, text in items:
        wire += format_event(code, text) if kind == "event" else f"{code} {text}\r\n".encode()
    parser = ReplyParser()
    replies = []
    for start in range(0, len(wire), cut):
        replies.extend(parser.feed(wire[start : start + cut]))
    assert [reply.code for reply in replies] == [code for kind, code, _ in items if kind == "reply"]
    assert [event.code for event in parser.take_events()] == [code for kind, code, _ in items if kind == "event"]


def test_an_event_code_outside_600_699_is_refused():
    with pytest.raises(ValueError):
        format_event(599, "no")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, engine):
    path = tmp_path_factory.mktemp("events")
    users = write_users_file(path / "users.txt")
    daemon = Daemon(
        path, "--users", str(users), "--round-seconds", "0.5", "--tables", "a:american,b:european", engine=engine
    )
    yield daemon
    daemon.stop()


def test_client_events_hold_the_rounds_and_replies_stay_replies(daemon):
    with Client(daemon.host, daemon.port) as client:
        client.login("guest")
        assert client.join("a").code == 200
        codes: list[int] = []
        while 630 not in codes:
            events = client.events(timeout=10)
            assert events, "no event within 10 s"
            codes.extend(event.code for event in events)
            assert client.noop().code == 200  # a command in between gets its own reply
        assert set(codes) <= {610, 620, 630}
        assert client.leave().code == 200


def test_client_listen_hands_events_to_a_callback_while_commands_run(daemon):
    seen: queue.SimpleQueue = queue.SimpleQueue()
    with Client(daemon.host, daemon.port) as client, Client(daemon.host, daemon.port) as other:
        client.login("guest")
        other.login("guest")
        client.join("b")
        client.listen(seen.put)
        other.join("b")
        assert other.chat("hello there").code == 200
        while True:
            event = seen.get(timeout=10)
            if event.code == 650:
                assert event.text.endswith(": hello there")
                break
        assert client.bets().bankroll == 100  # replies still reach the command that asked
        while seen.get(timeout=10).code != 630:
            pass


def test_play_at_a_shared_table_shows_the_rounds_while_the_player_types(daemon):
    play = subprocess.Popen(
        [sys.executable, str(ROOT / "client.py"), "play", "--port", str(daemon.port), "--table", "a"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(30, play.kill)  # a line that never comes ends the test, not the run
    watchdog.start()
    try:
        assert play.stdout is not None and play.stdin is not None
        lines: list[str] = []
        while not (lines and lines[-1].startswith("  * round") and "; " in lines[-1]):  # a round's result
            line = play.stdout.readline()
            assert line, "play ended before a round was shown: " + "".join(lines)
            lines.append(line)
            if line.startswith("Type a bet"):
                play.stdin.write("red 10\n")  # typed while the rounds go by
                play.stdin.flush()
        out, err = play.communicate("quit\n", timeout=10)
    finally:
        watchdog.cancel()
        if play.poll() is None:
            play.kill()
            play.wait()
    assert play.returncode == 0, err
    text = "".join(lines) + out
    assert "Joined a: american wheel" in text and "  * round" in text and "Left a" in text


def test_the_raw_shell_prints_a_tables_events_as_they_come(daemon):
    raw = subprocess.Popen(
        [sys.executable, str(ROOT / "client.py"), "raw", "--port", str(daemon.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(30, raw.kill)
    watchdog.start()
    try:
        assert raw.stdin is not None and raw.stdout is not None
        raw.stdin.write("USER guest\nJOIN b\n")
        raw.stdin.flush()
        lines: list[str] = []
        while not (lines and lines[-1].startswith("630 round ")):
            line = raw.stdout.readline()
            assert line, "raw ended before an event: " + "".join(lines)
            lines.append(line)
        out, err = raw.communicate("QUIT\n", timeout=10)
    finally:
        watchdog.cancel()
        if raw.poll() is None:
            raw.kill()
            raw.wait()
    assert raw.returncode == 0, err
    assert lines[1].startswith("230 ") and lines[2].startswith("200 Joined b: european wheel")
    assert out.rstrip().endswith("221 Goodbye")
