"""The command layer: the command table, sessions, and each service's commands."""

from ..domain.accounts import UserDirectory
from . import core
from .errors import CommandError
from .session import Services, Session
from .table import ArgSpec, Command, CommandTable

__all__ = ["ArgSpec", "Command", "CommandError", "CommandTable", "Services", "Session", "build_services"]


def build_services(users: UserDirectory | None = None) -> Services:
    """The services of a daemon with every command registered."""
    table = CommandTable(core.COMMANDS)
    return Services(table, users)
