"""``client.py raw`` (an interactive line shell) and ``client.py batch FILE``."""

import sys
import threading

from ..client import Client, ClientError, ConnectionClosed
from ..wire import ProtocolError


def add_parsers(programs, add_address) -> None:
    raw = programs.add_parser("raw", help="interactive line shell, replies printed as they come")
    add_address(raw)
    raw.set_defaults(run=run_raw)
    batch = programs.add_parser("batch", help="send each line of FILE; exit 0 if the last reply is 2yz")
    batch.add_argument("file", help="file of command lines ('-' for standard input)")
    add_address(batch)
    batch.set_defaults(run=run_batch)


def run_raw(args) -> int:
    try:
        import readline  # noqa: F401  (gives input() line editing and history)
    except ImportError:
        pass
    try:
        client = Client(args.host, args.port, timeout=None)
    except OSError as exc:
        print(f"cannot connect to {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(client.greeting, flush=True)
    printer = threading.Thread(target=_print_replies, args=(client,), daemon=True)
    printer.start()
    try:
        while printer.is_alive():
            try:
                line = input()
            except EOFError:
                client.shutdown_write()  # the server answers what it has, then closes
                printer.join(timeout=10)
                break
            if not printer.is_alive():
                break
            try:
                client.send_line(line)
            except ValueError as exc:
                print(f"not sent: {exc}", file=sys.stderr)
    except (KeyboardInterrupt, OSError):
        pass
    finally:
        client.close()
    return 0


def _print_replies(client: Client) -> None:
    while True:
        try:
            reply = client.read_reply()
        except (ClientError, ProtocolError, OSError):
            print("connection closed", file=sys.stderr, flush=True)
            return
        print(reply, flush=True)


def run_batch(args) -> int:
    source = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")
    with source:
        lines = [line.rstrip("\r\n") for line in source if line.strip()]
    try:
        client = Client(args.host, args.port)
    except OSError as exc:
        print(f"cannot connect to {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    last = client.greeting
    print(last, flush=True)
    try:
        for line in lines:
            client.send_line(line)
            last = client.read_reply()
            print(last, flush=True)
    except (ConnectionClosed, ProtocolError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0 if 200 <= last.code < 300 else 1
