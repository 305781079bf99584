"""The sans-I/O Connection, driven in process: bytes and ticks in, bytes and actions out, no sockets."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import TEST_HASH_COST, TEST_USERS
from lineproto.commands import Command, Services, build_services
from lineproto.commands.table import AUTH_POOL, STORE_POOL
from lineproto.connection import (
    BUSY,
    CLOSE,
    CLOSED,
    CLOSING,
    MAX_LINES_PER_STEP,
    READY,
    ConnectionLimits,
    RunBlocking,
    ServerState,
)
from lineproto.domain.accounts import User, UserDirectory, hash_password
from lineproto.store import SqliteStore
from lineproto.wire import Reply, ReplyParser

IDLE = 10.0


USERS = [
    User(name, real, frozenset(roles.split(",")), hash_password(password, **TEST_HASH_COST))
    for name, (real, roles, password) in TEST_USERS.items()
]


def user_directory() -> UserDirectory:
    return UserDirectory({user.name: user for user in USERS})


class Driver:
    """A minimal engine: runs blocking jobs at once unless told to hold them; collects what is sent."""

    def __init__(self, services: Services | None = None, hold_jobs: bool = False, **limits):
        self.state = ServerState(
            services or build_services(user_directory()), ConnectionLimits(idle_timeout=IDLE, **limits)
        )
        self.connection = self.state.connection("192.0.2.1:4000")
        self.hold_jobs = hold_jobs
        self.held: list[RunBlocking] = []
        self.sent = b""
        self.closed = False
        self.now = 0.0
        self.parser = ReplyParser()

    def handle(self, output) -> bytes:
        data, actions = output
        self.sent += data
        for action in actions:
            if action is CLOSE:
                self.closed = True
            elif self.hold_jobs:
                self.held.append(action)
            else:
                data += self.handle(self.connection.complete(action.job(), self.now))
        return data

    def start(self) -> list[Reply]:
        return self.parser.feed(self.handle(self.connection.start(self.now)))

    def send(self, data: bytes) -> list[Reply]:
        return self.parser.feed(self.handle(self.connection.receive_data(data, self.now)))

    def finish_job(self) -> list[Reply]:
        action = self.held.pop(0)
        return self.parser.feed(self.handle(self.connection.complete(action.job(), self.now)))


def codes(replies) -> list[int]:
    return [reply.code for reply in replies]


def started(**kwargs) -> Driver:
    driver = Driver(**kwargs)
    assert codes(driver.start()) == [220]
    return driver


# ------------------------------------------------------------------ greeting, admission


def test_greeting_then_ready():
    driver = Driver()
    [greeting] = driver.start()
    assert greeting == Reply(220, ("lineproto 0.1.0 ready",))
    assert driver.connection.state is READY
    assert driver.connection.deadline == IDLE


def test_full_server_refuses_with_421_and_close():
    driver = started(max_connections=1)
    second = driver.state.connection("192.0.2.2:4000")
    data, actions = second.start(0.0)
    assert data.startswith(b"421 ") and b"too many connections" in data and actions == (CLOSE,)
    second.connection_lost()
    assert driver.state.open_connections == 1  # the refused one never counted
    driver.connection.connection_lost()
    assert driver.state.open_connections == 0


def test_stopping_server_refuses_new_connections():
    driver = Driver()
    driver.state.stop()
    data, actions = driver.connection.start(0.0)
    assert data.startswith(b"421 ") and b"shutting down" in data and actions == (CLOSE,)


# ------------------------------------------------------------------ lines, order, QUIT


def test_pipelined_lines_answered_in_order_and_blank_lines_ignored():
    driver = started()
    replies = driver.send(b"NOOP\r\n\r\nHELP NOOP\nBOGUS!\r\nNOOP\r\n")
    assert codes(replies) == [200, 214, 500, 200]


def test_nothing_until_the_line_is_complete():
    driver = started()
    assert driver.send(b"NO") == [] and driver.sent.count(b"\r\n") == 1
    assert codes(driver.send(b"OP\r")) == []
    assert codes(driver.send(b"\n")) == [200]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=60), max_size=12))
def test_any_split_of_the_input_gives_the_same_output(cuts):
    stream = b"NOOP\r\nHELP\r\nUSER guest\r\nBET RED 5\r\nBETS\r\n\xff\xfb\x01STAT\r\nBOGUS 1\r\nCLR\r\n"
    whole = started()
    whole.send(stream)
    pieces = started()
    last = 0
    for cut in sorted(set(cuts)):
        pieces.send(stream[last:cut])
        last = max(last, cut)
    pieces.send(stream[last:])
    strip_uptime = lambda data: b"\n".join(line for line in data.split(b"\n") if b"uptime" not in line)  # noqa: E731
    assert strip_uptime(pieces.sent) == strip_uptime(whole.sent)


def test_quit_closes_and_lines_after_it_are_dropped():
    driver = started()
    replies = driver.send(b"NOOP\r\nQUIT\r\nNOOP\r\nNOOP\r\n")
    assert codes(replies) == [200, 221] and driver.closed
    assert driver.connection.state is CLOSING
    assert driver.send(b"NOOP\r\n") == []


def test_overlong_line_invalid_utf8_and_telnet_keep_the_connection():
    driver = started()
    replies = driver.send(b"X" * 5000 + b"\r\n" + b"\xc3\x28\r\n" + b"\xff\xfd\x03NOOP\r\n")
    assert codes(replies) == [500, 500, 200]
    assert "Line too long" in replies[0].text and "UTF-8" in replies[1].text


def test_eof_answers_the_unterminated_last_line_then_closes():
    driver = started()
    driver.send(b"NOOP\r\nNOOP")
    replies = driver.parser.feed(driver.handle(driver.connection.receive_eof(0.0)))
    assert codes(replies) == [200] and driver.closed


# ------------------------------------------------------------------ timeouts


def test_idle_timeout_counts_from_the_last_complete_line():
    driver = started()
    connection = driver.connection
    driver.now = 6.0
    driver.send(b"NOOP\r\n")
    assert connection.deadline == 6.0 + IDLE
    for second in (7.0, 9.0, 12.0, 15.0):  # a byte now and then does not keep it open
        driver.now = second
        driver.send(b"N")
        assert connection.deadline == 6.0 + IDLE
    assert connection.tick(15.9) == (b"", ())
    data, actions = connection.tick(16.0)
    assert data == b"421 Idle timeout; closing connection\r\n" and actions == (CLOSE,)
    assert connection.deadline is None


def test_no_timeout_while_a_command_runs():
    driver = started(services=_services_with_slow_command(), hold_jobs=True)
    driver.send(b"SLOW\r\n")
    assert driver.connection.state is BUSY and driver.connection.deadline is None
    assert driver.connection.tick(10_000.0) == (b"", ())
    driver.now = 50.0
    assert codes(driver.finish_job()) == [250]
    assert driver.connection.deadline == 50.0 + IDLE


# ------------------------------------------------------------------ blocking commands


def _services_with_slow_command(calls=None) -> Services:
    services = build_services(user_directory())

    def slow(session):
        if calls is not None:
            calls.append(session.peer)
        return Reply(250, ("slow done",))

    services.table.add(Command("SLOW", "", "A command that blocks (tests)", slow, blocks=lambda session: STORE_POOL))
    return services


def test_blocking_command_holds_later_lines_until_its_reply():
    calls = []
    driver = started(services=_services_with_slow_command(calls), hold_jobs=True)
    assert driver.send(b"SLOW\r\nNOOP\r\nNOOP\r\n") == []
    [action] = driver.held
    assert action.pool == STORE_POOL and calls == []  # nothing ran yet: the engine runs the job
    assert driver.connection.state is BUSY
    assert driver.send(b"NOOP\r\n") == []  # still in order: waits
    assert codes(driver.finish_job()) == [250, 200, 200, 200]
    assert calls == ["192.0.2.1:4000"] and driver.connection.state is READY


def test_pass_runs_in_the_auth_pool():
    driver = started(hold_jobs=True)
    assert codes(driver.send(b"USER carol\r\nPASS secret\r\n")) == [331]
    [action] = driver.held
    assert action.pool == AUTH_POOL
    assert codes(driver.finish_job()) == [230]


def test_store_commands_block_for_registered_players_only(tmp_path):
    store = SqliteStore(str(tmp_path / "db.sqlite"))
    try:
        for user in USERS:
            store.put_user(user)
        services = build_services(UserDirectory(lookup=store.get_user), store=store)
        driver = started(services=services, hold_jobs=True)
        assert codes(driver.send(b"USER dave\r\n")) == [331]  # nobody to log out: at once
        driver.send(b"PASS hunter2\r\n")
        assert [a.pool for a in driver.held] == [AUTH_POOL]
        assert codes(driver.finish_job()) == [230]
        driver.send(b"BET RED 10\r\n")
        assert [a.pool for a in driver.held] == [STORE_POOL]
        assert codes(driver.finish_job()) == [200]
        driver.send(b"USER carol\r\n")  # logs dave out first: that releases what the store holds
        assert [a.pool for a in driver.held] == [STORE_POOL]
        assert codes(driver.finish_job()) == [331]
        guest = started(services=services, hold_jobs=True)
        assert codes(guest.send(b"USER guest\r\nBET RED 10\r\nNOOP\r\n")) == [230, 200, 200]
        assert guest.held == []  # a guest's table is in memory
    finally:
        store.close()


def test_lost_while_busy_releases_the_session_after_the_job():
    released = []
    services = _services_with_slow_command()
    services.logout_hooks.append(lambda session: released.append(session.user.name))
    driver = started(services=services, hold_jobs=True)
    driver.send(b"USER guest\r\nSLOW\r\n")
    assert driver.connection.connection_lost() == ()
    assert released == [] and driver.connection.state is CLOSED
    assert driver.state.open_connections == 0
    driver.finish_job()  # the job finishes after the peer left: only now is the session released
    assert released == ["guest"] and driver.sent.count(b"250") == 0


# ------------------------------------------------------------------ steps, backpressure, counters


def test_one_step_answers_a_bounded_number_of_lines():
    driver = started()
    replies = driver.send(b"NOOP\r\n" * (MAX_LINES_PER_STEP * 2 + 5))
    connection = driver.connection
    assert len(replies) == MAX_LINES_PER_STEP
    assert connection.backlog and not connection.wants_input
    driver.parser.feed(driver.handle(connection.process(0.0)))
    assert connection.backlog and connection.wants_input
    replies = driver.parser.feed(driver.handle(connection.process(0.0)))
    assert len(replies) == 5 and not connection.backlog


def test_commands_served_counts_every_pipelined_command():
    driver = started()
    replies = driver.send(b"NOOP\r\n" * 10 + b"BOGUS!\r\n\r\nSTAT\r\n")
    stat = dict(line.split(": ", 1) for line in replies[-1].lines if ": " in line)
    assert stat["commands-served"] == "12" and stat["connections"] == "1"


# ------------------------------------------------------------------ shutdown


def test_shutdown_sends_421_to_a_ready_connection():
    driver = started()
    driver.state.stop()
    data, actions = driver.connection.shutdown(0.0)
    assert data == b"421 Server shutting down; closing connection\r\n" and actions == (CLOSE,)


def test_shutdown_lets_the_running_command_finish_then_421():
    driver = started(services=_services_with_slow_command(), hold_jobs=True)
    driver.send(b"SLOW\r\nNOOP\r\n")
    driver.state.stop()
    assert driver.connection.shutdown(0.0) == (b"", ())
    assert codes(driver.finish_job()) == [250, 421] and driver.closed


def test_stop_between_pipelined_lines_stops_at_once():
    services = build_services(user_directory())
    state_holder = []

    def stop_now(session):
        state_holder[0].stop()  # as a signal handler would, between two lines
        return Reply(200, ("stopping",))

    services.table.add(Command("HALT", "", "Stop the server (tests)", stop_now))
    driver = Driver(services)
    state_holder.append(driver.state)
    driver.start()
    replies = driver.send(b"NOOP\r\nHALT\r\n" + b"NOOP\r\n" * 50)
    assert codes(replies) == [200, 200, 421] and driver.closed


@pytest.mark.parametrize("verb", ["USER guest", "NOOP"])
def test_connection_lost_releases_once(verb):
    released = []
    services = build_services(user_directory())
    services.logout_hooks.append(lambda session: released.append(session.user.name))
    driver = started(services=services)
    driver.send(verb.encode() + b"\r\n")
    assert driver.connection.connection_lost() == ()
    assert driver.connection.connection_lost() == ()
    assert released == (["guest"] if verb == "USER guest" else [])
