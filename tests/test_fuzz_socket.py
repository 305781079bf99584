"""A hypothesis state machine against a live daemon: valid commands, garbage, TLS upgrades and
disconnects, mixed. After every step the connection (or a new one) still answers, dave's chips
are conserved (bankroll + chips on open bets change only by what acknowledged spins returned),
and carol's readings are exactly the ones acknowledged."""

import socket
import ssl

import pytest
import trustme
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from conftest import Daemon, RawConnection, stat, write_users_file
from lineproto.wire.shapes import Spin

GARBAGE = st.binary(max_size=300).map(lambda data: bytes(b for b in data if not chr(b).isalpha()))


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory, engine):
    path = tmp_path_factory.mktemp("fuzz")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    issued.private_key_pem.write_to_path(str(path / "key.pem"))
    (path / "cert.pem").write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    daemon = Daemon(
        path,
        "--users",
        str(write_users_file(path / "users.txt")),
        "--cert",
        str(path / "cert.pem"),
        "--key",
        str(path / "key.pem"),
        "--max-bad-commands",
        "1000",
        "--address-lock-after",
        "1000",
        engine=engine,
    )
    context = ssl.create_default_context()
    ca.configure_trust(context)
    yield daemon, context
    daemon.stop()


def test_fuzzing_over_the_socket_keeps_sessions_and_state(fuzz_daemon):
    daemon, context = fuzz_daemon

    class Fuzz(RuleBasedStateMachine):
        @initialize()
        def connect(self):
            self.line = self._login(tls=False)
            state = stat(self.line)
            self.total = int(state["bankroll"]) + int(state["open-bets"])
            self.readings = int(stat(self._carol())["my-readings"])

        def _open(self, tls: bool) -> RawConnection:
            line = RawConnection.over(socket.create_connection(("127.0.0.1", daemon.port), timeout=30))
            assert line.reply().code == 220
            if tls:
                assert line.command("AUTH TLS").code == 234
                line = RawConnection.over(context.wrap_socket(line.sock, server_hostname="127.0.0.1"))
            return line

        def _login(self, tls: bool, name="dave", password="hunter2") -> RawConnection:
            line = self._open(tls)
            line.command(f"USER {name}")
            assert line.command(f"PASS {password}").code == 230
            return line

        def _carol(self) -> RawConnection:
            if not hasattr(self, "carol"):
                self.carol = self._login(False, "carol", "secret")
            return self.carol

        @rule(amount=st.integers(1, 30))
        def bet(self, amount):
            reply = self.line.command(f"BET RED {amount}")
            assert reply.code in (200, 535, 538), reply

        @rule()
        def spin(self):
            reply = self.line.command("SPIN")
            assert reply.code == 250, reply
            self.total += Spin.from_reply(reply).net

        @rule()
        def clear(self):
            assert self.line.command("CLR").code == 200

        @rule(junk=GARBAGE)
        def garbage(self, junk):
            self.line.sock.sendall(junk + b"\r\nNOOP\r\n")
            while (reply := self.line.reply()).code != 200:
                assert 400 <= reply.code < 600, reply

        @rule(tls=st.booleans())
        def reconnect(self, tls):
            self.line.sock.close()
            self.line = self._login(tls)

        @rule(value=st.integers(0, 99999))
        def read_a_meter(self, value):
            carol = self._carol()
            job = carol.command("JOB")
            assert job.code == 250, job
            assert carol.command(f"READ {job.lines[0].split()[0]} {value}").code == 250
            self.readings += 1

        @invariant()
        def chips_and_readings_are_conserved(self):
            if not hasattr(self, "line"):
                return
            state = stat(self.line)
            assert int(state["bankroll"]) + int(state["open-bets"]) == self.total
            if hasattr(self, "carol"):
                assert int(stat(self.carol)["my-readings"]) == self.readings

        def teardown(self):
            for line in (getattr(self, "line", None), getattr(self, "carol", None)):
                if line is not None:
                    line.sock.close()

    Fuzz.TestCase.settings = settings(
        max_examples=8, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    Fuzz.TestCase().runTest()
