"""``--metrics-port``: STAT's counters scraped in Prometheus text format, on both engines.

The scrape is parsed with prometheus-client's own parser; the numbers must be STAT's.
"""

import socket
import subprocess
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, RawConnection, stat
from lineproto import __version__
from lineproto.commands.session import LIMIT_COUNTERS


def metrics_address(daemon) -> tuple[str, int]:
    """The metrics listener of ``daemon``, from its notify file's ``metrics HOST:PORT`` line."""
    for line in daemon.notify.read_text().splitlines():
        if line.startswith("metrics "):
            host, port = line.split(" ", 1)[1].rsplit(":", 1)
            return host, int(port)
    raise AssertionError(f"no metrics line in {daemon.notify.read_text()!r}")


def scrape(daemon) -> dict[str, float]:
    """Every sample of one scrape, by name (labels left out, the info metric's version kept)."""
    host, port = metrics_address(daemon)
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name] = sample.value
            if sample.name == "lineproto_info":
                samples["version"] = sample.labels["version"]
    return samples


def scrape_until(daemon, name: str, value: float, timeout: float = 10.0) -> dict[str, float]:
    """Scrape until ``name`` reaches ``value`` (a closing connection reports its commands a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(daemon)
        if samples[name] == value:
            return samples
        assert time.monotonic() < deadline, f"{name} is {samples[name]}, not {value}"
        time.sleep(0.02)


def test_every_stat_counter_is_a_metric_and_they_move(start_daemon):
    daemon = start_daemon("--metrics-port", "0", "--max-per-address", "2")
    assert metrics_address(daemon)[0] == "127.0.0.1"  # loopback unless --metrics-host says otherwise
    before = scrape(daemon)
    assert before["version"] == __version__
    assert before["lineproto_connections"] == 0
    with RawConnection(daemon.port) as connection:
        connection.reply()
        assert scrape(daemon)["lineproto_connections"] == 1
        for _ in range(5):
            assert connection.command("NOOP").code == 200
        counters = stat(connection)  # the NOOPs and this STAT are reported now
        with RawConnection(daemon.port) as second, RawConnection(daemon.port) as third:
            second.reply()
            assert third.reply().code == 421  # refused-per-address
            after = scrape_until(daemon, "lineproto_refused_per_address_total", 1)
    assert after["lineproto_commands_served_total"] == before["lineproto_commands_served_total"] + 6
    assert int(counters["commands-served"]) == after["lineproto_commands_served_total"]
    for key in LIMIT_COUNTERS + ("connections", "commands-served"):
        assert key in counters  # STAT shows it, and so does the scrape
    for key in LIMIT_COUNTERS:
        assert f"lineproto_{key.replace('-', '_')}_total" in after, key
        if key != "refused-per-address":
            assert after[f"lineproto_{key.replace('-', '_')}_total"] == int(counters[key]), key
    assert after["lineproto_uptime_seconds"] >= int(counters["uptime"].rstrip("s"))
    scrape_until(daemon, "lineproto_connections", 0)  # all three closed
    assert daemon.stop() == 0  # the metrics listener stops with the daemon


def test_a_metrics_port_in_use_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, str(ROOT / "daemon.py"), "--db", ":memory:", "--port", "0", "--metrics-port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
        )
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(f"daemon.py: --metrics-port: cannot listen on 127.0.0.1:{port}: ")
