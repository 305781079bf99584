"""Discovery: ``--advertise NAME`` by mDNS/DNS-SD on loopback; a real browse, the library and ``--service`` find it.

Everything runs on 127.0.0.1 (the daemon's default address, so its mDNS runs on
``lo``): this works on a machine with no network. Each test's name is unique so
parallel runs on one machine do not see each other's daemons.
"""

import subprocess
import sys
import threading
import uuid

import pytest

zeroconf = pytest.importorskip("zeroconf", reason="the extra 'discovery' (zeroconf) is not installed")

import test_tls  # noqa: E402 - after the skip

from conftest import ROOT  # noqa: E402
from lineproto import __version__  # noqa: E402
from lineproto.discovery import SERVICE_TYPE, DiscoveryError, find, interfaces_for, txt_records  # noqa: E402

tls_certificate = test_tls.certificate  # the fixture, under a name of its own here


def unique_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


class Browser:
    """A real DNS-SD browse of ``_lineproto._tcp.local.`` on loopback, recording names as they come and go."""

    def __init__(self):
        self.zc = zeroconf.Zeroconf(interfaces=["127.0.0.1"], ip_version=zeroconf.IPVersion.V4Only)
        self.changes: list[tuple[str, str]] = []
        self.changed = threading.Condition()
        self.browser = zeroconf.ServiceBrowser(self.zc, SERVICE_TYPE, handlers=[self._on_change])

    def _on_change(self, zeroconf, service_type, name, state_change) -> None:
        with self.changed:
            self.changes.append((name, state_change.name))
            self.changed.notify_all()

    def wait_for(self, name: str, change: str, timeout: float = 20) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: (f"{name}.{SERVICE_TYPE}", change) in self.changes, timeout), (
                self.changes
            )

    def info(self, name: str):
        info = self.zc.get_service_info(SERVICE_TYPE, f"{name}.{SERVICE_TYPE}", timeout=10_000)
        assert info is not None
        return info

    def close(self):
        self.browser.cancel()
        self.zc.close()


@pytest.fixture
def browser():
    browsing = Browser()
    yield browsing
    browsing.close()


def test_a_browse_finds_the_daemon_with_its_txt_records_and_sees_it_leave(start_daemon, browser):
    name = unique_name()
    daemon = start_daemon("--advertise", name)
    browser.wait_for(name, "Added")
    info = browser.info(name)
    assert info.port == daemon.port
    assert info.parsed_addresses() == ["127.0.0.1"]
    assert info.properties == {b"version": __version__.encode(), b"tls": b"no"}
    daemon.stop()
    browser.wait_for(name, "Removed")  # the goodbye at shutdown


def test_the_txt_records_tell_tls_and_the_tls_port(start_daemon, browser, tls_certificate):
    _, cert, key = tls_certificate
    name = unique_name()
    daemon = start_daemon("--advertise", name, "--cert", cert, "--key", key, "--tls-port", "0")
    browser.wait_for(name, "Added")
    properties = browser.info(name).properties
    assert properties[b"tls"] == b"yes"
    assert properties[b"tls-port"] == str(daemon.tls_port).encode()


def test_the_library_finds_host_and_port_by_name(start_daemon):
    name = unique_name()
    daemon = start_daemon("--advertise", name)
    service = find(name, timeout=20, interfaces=["127.0.0.1"])
    assert (service.host, service.port, service.version, service.tls) == ("127.0.0.1", daemon.port, __version__, False)


def test_the_library_says_when_no_daemon_answers():
    name = unique_name()
    with pytest.raises(DiscoveryError, match=f"no daemon advertised as '{name}'"):
        find(name, timeout=0.5, interfaces=["127.0.0.1"])


def client(*args, stdin: str = ""):
    return subprocess.run(
        [sys.executable, str(ROOT / "client.py"), *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_the_client_connects_by_service_name(start_daemon):
    name = unique_name()
    start_daemon("--advertise", name)
    result = client("batch", "--service", name, "--timeout", "20", "-", stdin="NOOP\nQUIT\n")
    assert result.returncode == 0, result.stderr
    assert "200" in result.stdout and "221 Goodbye" in result.stdout


def test_a_service_nobody_advertises_is_one_line_and_status_1():
    name = unique_name()
    result = client("batch", "--service", name, "--timeout", "0.5", "-", stdin="NOOP\n")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"client.py batch: no daemon advertised as '{name}' ({SERVICE_TYPE}) answered within 0.5 s"
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--service", "a", "--host", "127.0.0.1"), "argument --host: not allowed with argument --service"),
        (("--service", "dotted.name"), "invalid service name 'dotted.name': 1-63 bytes, no dots"),
        (("--service", ""), "invalid service name '': 1-63 bytes"),
    ],
)
def test_service_mistakes_are_one_line_and_status_2(args, says):
    result = client("batch", *args, "-")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("client.py batch: error: ") and says in last, result.stderr
    assert "Traceback" not in result.stderr


def test_advertise_without_zeroconf_names_the_extra(tmp_path):
    # The package as installed without the extra: zeroconf cannot be imported.
    hide = "import runpy, sys; sys.modules['zeroconf'] = None; sys.argv[0] = 'daemon.py'; "
    hide += f"runpy.run_path({str(ROOT / 'daemon.py')!r}, run_name='__main__')"
    result = subprocess.run(
        [sys.executable, "-c", hide, "--db", str(tmp_path / "d.db"), "--port", "0", "--advertise", "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    expected = "daemon.py: --advertise needs the discovery extra: pip install 'lineproto[discovery]'"
    assert result.stderr.splitlines()[-1] == expected
    assert "Traceback" not in result.stderr


def test_service_without_zeroconf_names_the_extra():
    hide = "import runpy, sys; sys.modules['zeroconf'] = None; sys.argv[0] = 'client.py'; "
    hide += f"runpy.run_path({str(ROOT / 'client.py')!r}, run_name='__main__')"
    result = subprocess.run(
        [sys.executable, "-c", hide, "batch", "--service", "x", "-"],
        input="NOOP\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    expected = "client.py batch: --service needs the discovery extra: pip install 'lineproto[discovery]'"
    assert result.stderr.splitlines() == [expected]


def test_mdns_runs_on_the_interface_of_the_listening_address():
    assert interfaces_for("127.0.0.1") == ["127.0.0.1"]
    assert interfaces_for("0.0.0.0") is None  # every interface
    assert interfaces_for("localhost") is None
    assert txt_records(True, 36001) == {"version": __version__, "tls": "yes", "tls-port": "36001"}


def test_a_name_already_advertised_stops_the_second_daemon_in_one_line(start_daemon, tmp_path):
    name = unique_name()
    start_daemon("--advertise", name)
    find(name, timeout=20, interfaces=["127.0.0.1"])  # the first one holds the name now
    result = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "--db", str(tmp_path / "second.db"), "--port", "0"]
        + ["--advertise", name],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        result.stderr.splitlines()[-1] == f"daemon.py: --advertise {name}: another daemon on the network has that name"
    )
