"""``client.py web`` and ``lineproto-web``: run the gateway in front of a daemon (docs/WEB.md).

    python3 client.py web --daemon 127.0.0.1:36000 --port 8080

HTTP on 127.0.0.1 by default (``--host`` to change it), HTTPS with ``--cert`` and ``--key``;
TLS to the daemon's TLS port with ``--daemon-tls``; a PROXY v2 header with the browser's address
on each daemon connection with ``--daemon-proxy`` (a daemon listener started with
``--proxy-protocol v2``). Importing this module needs no aiohttp: the extra is asked for when
the gateway starts, so ``client.py --help`` works without it and a missing extra is one line.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import ssl
import sys
from pathlib import Path

from ..argtypes import ArgumentParser, port_number, positive_int, positive_seconds
from ..errors import StartError
from ..extras import program_name, require

#: The gateway's default port.
DEFAULT_PORT = 8080


def daemon_address(text: str) -> tuple[str, int]:
    """``--daemon HOST:PORT`` (``[::1]:36000`` for IPv6)."""
    host, colon, port = text.rpartition(":")
    if not colon or not host:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT: {text!r}")
    host = host.removeprefix("[").removesuffix("]")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {port!r}") from None
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"a port to connect to is 1-65535: {port!r}")
    return host, number


def origin(text: str) -> str:
    """``--allow-origin``: ``scheme://host[:port]`` as a browser sends it in ``Origin``."""
    scheme, sep, rest = text.partition("://")
    if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
        raise argparse.ArgumentTypeError(f"an origin is http(s)://host[:port], without a path: {text!r}")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--daemon", type=daemon_address, required=True, metavar="HOST:PORT", help="the daemon")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default %(default)s)")
    parser.add_argument(
        "--port", type=port_number, default=DEFAULT_PORT, help="port to serve on; 0 picks one (default %(default)s)"
    )
    parser.add_argument("--cert", metavar="PEM", help="serve HTTPS with this certificate (chain)")
    parser.add_argument("--key", metavar="PEM", help="the certificate's private key (default: in --cert)")
    parser.add_argument("--daemon-tls", action="store_true", help="TLS to the daemon (its --tls-port)")
    parser.add_argument("--daemon-cafile", metavar="PEM", help="CA certificates to verify the daemon's with")
    parser.add_argument(
        "--daemon-proxy",
        action="store_true",
        help="open each daemon connection with a PROXY v2 header naming the browser (daemon: --proxy-protocol v2)",
    )
    parser.add_argument(
        "--allow-origin",
        type=origin,
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an Origin allowed to change state and open /ws (repeatable; default the gateway's own)",
    )
    parser.add_argument(
        "--session-idle",
        type=positive_seconds,
        default=600.0,
        metavar="SECONDS",
        help="a browser session ends after this long without a request (default %(default)g)",
    )
    parser.add_argument(
        "--basic-idle",
        type=positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="a Basic login's daemon connection is kept this long without a request (default %(default)g)",
    )
    parser.add_argument(
        "--keepalive",
        type=positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="a session's quiet daemon connection gets a NOOP after this long: keep it below the daemon's "
        "--idle-timeout (default %(default)g)",
    )
    parser.add_argument(
        "--max-sessions", type=positive_int, default=1000, help="sessions at once, their most (default %(default)s)"
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="for the daemon's connection and greeting; a reply may take 3 times as long (default %(default)g)",
    )
    parser.add_argument("--notify", metavar="FILE", help="write HOST:PORT to FILE once the gateway listens")
    parser.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"))


def add_parsers(programs) -> None:
    """``client.py web``."""
    web = programs.add_parser(
        "web",
        help="the web gateway: REST, the page, the line protocol over WebSocket (extra 'web')",
        description="Serve the roulette and meter resources as JSON, the page and /ws in front of a "
        "daemon; each browser session owns one line-protocol connection (docs/WEB.md).",
    )
    add_arguments(web)
    web.set_defaults(run=run)


def own_origins(scheme: str, host: str, port: int) -> set[str]:
    """The origins a browser sends for pages from this gateway: its address, and localhost for loopback."""
    names = {host if ":" not in host else f"[{host}]"}
    try:
        if ipaddress.ip_address(host).is_loopback:
            names |= {"localhost", "127.0.0.1", "[::1]"}
    except ValueError:
        pass
    default = 443 if scheme == "https" else 80
    return {f"{scheme}://{name}" if port == default else f"{scheme}://{name}:{port}" for name in names}


def _contexts(args: argparse.Namespace) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    served = daemon = None
    try:
        if args.cert:
            served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            served.load_cert_chain(args.cert, args.key)
        elif args.key:
            raise StartError("--key needs --cert")
        if args.daemon_tls:
            daemon = ssl.create_default_context(cafile=args.daemon_cafile)
        elif args.daemon_cafile:
            raise StartError("--daemon-cafile needs --daemon-tls")
    except (OSError, ssl.SSLError) as exc:
        raise StartError(f"cannot load the certificates: {exc}") from None
    return served, daemon


def run(args: argparse.Namespace) -> int:
    """Start the gateway and serve until SIGINT or SIGTERM; 0 then, 2 for a bad start (one line)."""
    prog = getattr(getattr(args, "parser", None), "prog", program_name("lineproto-web"))
    try:
        require("aiohttp", "web", "the web gateway")
        if args.notify and not Path(args.notify).resolve().parent.is_dir():
            raise StartError(f"--notify {args.notify}: its directory does not exist")
        served, daemon_tls = _contexts(args)
        return asyncio.run(_serve(args, served, daemon_tls))
    except StartError as exc:
        print(f"{prog}: {exc}", file=sys.stderr, flush=True)
        return 2
    except OSError as exc:
        print(f"{prog}: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 2


async def _serve(args: argparse.Namespace, served: ssl.SSLContext | None, daemon_tls: ssl.SSLContext | None) -> int:
    from aiohttp import web

    from .app import Gateway, GatewayConfig
    from .upstream import DaemonAddress

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, port = args.daemon
    address = DaemonAddress(host, port, daemon_tls, args.daemon_proxy, args.timeout, 3 * args.timeout)
    config = GatewayConfig(
        address,
        set(args.allow_origin),
        secure=served is not None,
        session_idle=args.session_idle,
        basic_idle=args.basic_idle,
        keepalive=args.keepalive,
        max_sessions=args.max_sessions,
    )
    gateway = Gateway(config)
    runner = web.AppRunner(gateway.app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, args.host, args.port, ssl_context=served)
        await site.start()
        sockets = site._server.sockets if site._server is not None else ()  # type: ignore[attr-defined]
        bound = sockets[0].getsockname()[1] if sockets else args.port
        if not args.allow_origin:
            config.allow_origins = own_origins("https" if served else "http", args.host, bound)
        ready = f"{args.host}:{bound}"
        logging.getLogger("lineproto.web").info("serving on %s, daemon %s", ready, address)
        if args.notify:
            _write_atomically(Path(args.notify), ready + "\n")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    """``lineproto-web``: the same as ``client.py web``."""
    parser = ArgumentParser(prog=program_name("lineproto-web"), description="the lineproto web gateway (docs/WEB.md)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.parser = parser
    return run(args)
