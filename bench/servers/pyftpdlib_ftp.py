#!/usr/bin/env python3
"""pyftpdlib FTP server with anonymous read-only access: NOOP -> 200, USER anonymous -> 331, QUIT -> 221."""

import logging
import tempfile

from common import BACKLOG, notify, parse_args
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


def main():
    args = parse_args(__doc__)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    home = tempfile.mkdtemp(prefix="bench-ftp-")
    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(home)
    handler = FTPHandler
    handler.authorizer = authorizer
    handler.banner = "bench pyftpdlib ready"
    server = FTPServer((args.host, args.port), handler, backlog=BACKLOG)
    server.max_cons = 30000
    server.max_cons_per_ip = 0
    notify(args.notify, *server.address[:2])
    try:
        server.serve_forever(handle_exit=True)
    finally:
        server.close_all()


if __name__ == "__main__":
    main()
