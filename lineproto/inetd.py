"""inetd: serve the one session on the connected socket that inetd (``nowait``) passes as standard input.

inetd accepts the connection and starts the daemon with the socket as
descriptors 0 and 1 (and usually 2). :func:`take_socket` takes a duplicate of
descriptor 0 as the session's socket and points 0 and 1 (and 2, when it is the
same socket) at ``/dev/null``: from then on nothing the process prints can reach
the client, and closing the session's socket really closes the connection. The
engines serve that one session (``ServerSettings(inetd=sock)``) and stop when it
ends; logs go to stderr when it is not the socket, or to a log file.
"""

from __future__ import annotations

import argparse
import os
import socket

from .errors import StartError


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--inetd",
        action="store_true",
        help="serve one session on the connected socket passed as standard input (inetd nowait), then exit; "
        "--host and --port are not used",
    )


def _same_file(first: int, second: int) -> bool:
    try:
        a, b = os.fstat(first), os.fstat(second)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def take_socket() -> socket.socket:
    """The connected stream socket on standard input; descriptors 0 and 1 (and 2 if the same) become /dev/null."""
    fd = os.dup(0)
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        os.close(fd)
        raise StartError("--inetd: standard input is not a socket (inetd passes the connection there)") from None
    if sock.type != socket.SOCK_STREAM:
        sock.close()
        raise StartError("--inetd: standard input is not a stream socket (inetd.conf: stream tcp nowait)")
    try:
        sock.getpeername()
    except OSError:
        sock.close()
        raise StartError("--inetd: the socket on standard input is not connected (inetd.conf: nowait)") from None
    sock.set_inheritable(False)
    stderr_too = _same_file(0, 2)
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for target in (0, 1, 2) if stderr_too else (0, 1):
            os.dup2(devnull, target)
    finally:
        os.close(devnull)
    return sock
