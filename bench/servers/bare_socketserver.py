#!/usr/bin/env python3
"""The ceiling for our design: a bare socketserver.ThreadingTCPServer NOOP loop.

Reads whole recv() chunks and answers every complete line of a chunk with one sendall.
"""

import socketserver

from common import BACKLOG, GREETING, answer, parse_args, serve_sync


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.sendall(GREETING)
        buffer = b""
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            if b"\n" not in data:
                continue
            *lines, buffer = buffer.split(b"\n")
            out, quit_ = answer(lines)
            try:
                if out:
                    sock.sendall(out)
            except OSError:
                return
            if quit_:
                return


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = BACKLOG


def main():
    args = parse_args(__doc__)
    serve_sync(Server((args.host, args.port), Handler), args.notify)


if __name__ == "__main__":
    main()
