"""``client.py``: the console programs, one module each, dispatched by subcommand.

Each program module offers ``add_parsers(programs, add_address)``, which adds
its subcommands with ``set_defaults(run=function)``.
"""

import argparse

from .. import DEFAULT_HOST, DEFAULT_PORT
from . import meter, raw, roulette

PROGRAM_MODULES = (raw, roulette, meter)


def add_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help="daemon address (default %(default)s)")
    parser.add_argument("-p", "--port", type=int, default=DEFAULT_PORT, help="daemon port (default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="client.py", description="lineproto console clients")
    programs = parser.add_subparsers(dest="program", metavar="PROGRAM", required=True)
    for module in PROGRAM_MODULES:
        module.add_parsers(programs, add_address)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)
