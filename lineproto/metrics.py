"""``--metrics-port``: the STAT counters in Prometheus text format, served by the official client.

A :class:`StatsCollector` reads the daemon's :class:`~lineproto.commands.session.ServerStats` at
each scrape, so the numbers are STAT's own at that moment and nothing is counted twice. The
exposition (the text format, the HTTP server, its thread) is prometheus-client's, from the
``metrics`` extra. Served on loopback unless ``--metrics-host`` says otherwise: the counters tell
an outsider how busy and how attacked the daemon is.
"""

import argparse
import logging

from . import DEFAULT_HOST, PRODUCT, __version__
from .argtypes import port_number
from .errors import StartError
from .extras import require

log = logging.getLogger("lineproto.metrics")

#: What the metric names start with.
NAMESPACE = PRODUCT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The daemon's metrics options."""
    group = parser.add_argument_group("metrics (docs/DEPLOYING.md, Metrics; extra 'metrics')")
    group.add_argument(
        "--metrics-port",
        type=port_number,
        metavar="PORT",
        help="serve the STAT counters for Prometheus on this port (0: any free port)",
    )
    group.add_argument(
        "--metrics-host",
        default=DEFAULT_HOST,
        metavar="ADDRESS",
        help="address of the metrics listener (default %(default)s)",
    )


def metric_name(stat_key: str) -> str:
    """The metric of a STAT key: ``refused-capacity`` is ``lineproto_refused_capacity``."""
    return f"{NAMESPACE}_{stat_key.replace('-', '_')}"


class StatsCollector:
    """A prometheus-client collector of one daemon's :class:`ServerStats`, read at scrape time."""

    def __init__(self, stats, metric_types):
        self.stats = stats
        self.types = metric_types  # prometheus_client.core: its *MetricFamily classes

    def collect(self):
        stats, types = self.stats, self.types
        yield types.InfoMetricFamily(NAMESPACE, "the daemon's product and version", value={"version": __version__})
        yield types.GaugeMetricFamily(metric_name("uptime-seconds"), "seconds since start", value=stats.uptime)
        yield types.GaugeMetricFamily(metric_name("connections"), "connections open now", value=stats.connections)
        yield types.CounterMetricFamily(
            metric_name("commands-served"), "commands answered since start", value=stats.commands
        )
        for key, value in list(stats.counters.items()):
            yield types.CounterMetricFamily(metric_name(key), f"STAT {key} since start", value=value)


class MetricsServer:
    """The HTTP listener of ``/metrics``, in a thread of its own: :meth:`start`, then :meth:`stop`."""

    def __init__(self, host: str, port: int):
        self.client = require("prometheus_client", "metrics", "--metrics-port")
        self.families = require("prometheus_client.core", "metrics", "--metrics-port")  # the *MetricFamily classes
        self.host, self.port = host, port
        self.address: tuple[str, int] = (host, port)

    def start(self, stats) -> "MetricsServer":
        """Serve ``stats`` (the daemon's :class:`ServerStats`) from now on."""
        registry = self.client.CollectorRegistry(auto_describe=True)
        registry.register(StatsCollector(stats, self.families))
        try:
            self._server, self._thread = self.client.start_http_server(self.port, self.host, registry)
        except OSError as exc:
            raise StartError(
                f"--metrics-port: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        self.address = self._server.server_address[:2]
        log.info("metrics on http://%s:%d/metrics", *self.address)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def from_arguments(args: argparse.Namespace) -> MetricsServer | None:
    """The metrics listener ``args`` ask for (``--metrics-port``), not started yet; None if not asked for.

    Made first thing, so a missing extra stops the daemon before it opens anything.
    """
    if args.metrics_port is None:
        return None
    return MetricsServer(args.metrics_host, args.metrics_port)
