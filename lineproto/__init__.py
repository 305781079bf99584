"""lineproto: a line-protocol daemon for a roulette table and a meter-reading service.

Layers, each ignorant of the ones above it: ``wire`` (sans-I/O codec), ``domain``
(roulette and meters), ``store`` (persistence), ``commands`` (the command table),
``connection`` (one connection's protocol, no I/O), ``engines`` (sockets: an
asyncio event loop, or socketserver threads), ``client`` (the Python client library).
"""

PRODUCT = "lineproto"
__version__ = "0.1.0"

#: Where the daemon listens and clients connect unless told otherwise: loopback only.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 36000
