#!/usr/bin/env python3
"""Twisted LineOnlyReceiver NOOP server (the default reactor: epoll on Linux)."""

from common import BACKLOG, GREETING, answer, notify, parse_args
from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineOnlyReceiver


class NoopLines(LineOnlyReceiver):
    delimiter = b"\r\n"

    def connectionMade(self):
        self.transport.write(GREETING)

    def lineReceived(self, line):
        out, quit_ = answer((line,))
        if out:
            self.transport.write(out)
        if quit_:
            self.transport.loseConnection()


def main():
    args = parse_args(__doc__)
    factory = protocol.Factory.forProtocol(NoopLines)
    port = reactor.listenTCP(args.port, factory, backlog=BACKLOG, interface=args.host)
    address = port.getHost()
    reactor.callWhenRunning(notify, args.notify, address.host, address.port)
    reactor.run()


if __name__ == "__main__":
    main()
