"""The command layer: the command table, sessions, and each service's commands.

Every service module (``core``, ``roulette``, ``meters``) offers the same four
things: ``COMMANDS``, ``ERROR_CODES`` (domain errors to reply codes),
``add_arguments(parser)`` (its daemon options) and ``install(services,
options)``; and, if it has any, ``add_admin_commands(add)`` (its ``daemon.py``
subcommands, such as ``roster``). The daemon and the server never change when a
service is added.
"""

import argparse

from ..argtypes import positive_seconds
from ..domain.accounts import UserDirectory
from ..store.labels import DEFAULT_LABEL_TTL, LabelPolicy
from . import core, meters, roulette
from .errors import CommandError
from .session import Blocking, Services, Session
from .table import ArgSpec, Command, CommandTable

__all__ = [
    "SERVICE_MODULES",
    "ArgSpec",
    "Blocking",
    "Command",
    "CommandError",
    "CommandTable",
    "Services",
    "Session",
    "add_admin_commands",
    "add_arguments",
    "build_services",
]

SERVICE_MODULES = (core, roulette, meters)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every service's daemon options to ``parser``."""
    parser.add_argument_group("labels").add_argument(
        "--label-ttl",
        type=positive_seconds,
        default=DEFAULT_LABEL_TTL,
        metavar="SECONDS",
        help="how long a labelled change's reply is kept for a retry with the same label (default %(default)s)",
    )
    for module in SERVICE_MODULES:
        module.add_arguments(parser)


def add_admin_commands(add) -> None:
    """Every service's ``daemon.py`` subcommands.

    ``add(name, help, run)`` returns the subcommand's parser (``--db`` already on it);
    ``run(args, open_store)`` carries it out, ``open_store(create)`` opening the database
    as a context manager (``create``: a missing database may be created), and returns the
    exit status. A :class:`~lineproto.errors.StartError` is one line and exit 2.
    """
    for module in SERVICE_MODULES:
        hook = getattr(module, "add_admin_commands", None)
        if hook is not None:
            hook(add)


def default_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args([])


def build_services(
    users: UserDirectory | None = None, options: argparse.Namespace | None = None, store=None
) -> Services:
    """The services of a daemon with every command registered.

    ``store`` (a :class:`lineproto.store.Store`) makes state durable; without
    one, services keep their state in memory.
    """
    services = Services(CommandTable(), users)
    services.store = store
    options = options if options is not None else default_options()
    services.label_policy = LabelPolicy(ttl=options.label_ttl)
    for module in SERVICE_MODULES:
        module.install(services, options)
    return services
