"""The declarative command table: one entry per verb, read by dispatch and HELP.

An entry says what a command is called, what arguments it takes (as the
syntax line HELP prints), whether it needs a login or a role, and which
function carries it out. Services add their entries; the server loop never
changes for a new command.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..wire import Reply

_PARAM = re.compile(r"(\[)?<([^<>]+?)(\.\.\.)?>\]?")


@dataclass(frozen=True)
class ArgSpec:
    """How many words a command takes, parsed from its syntax line.

    ``<x>`` is required, ``[<x>]`` optional, ``<x...>`` or ``[<x...>]`` takes
    the rest of the line (spaces included) and must come last.
    """

    required: int
    optional: int
    rest_of_line: bool

    @classmethod
    def from_syntax(cls, syntax: str) -> "ArgSpec":
        required = optional = 0
        rest = False
        for match in _PARAM.finditer(syntax):
            if rest:
                raise ValueError(f"a rest-of-line argument must come last: {syntax!r}")
            if match.group(1):
                optional += 1
            else:
                if optional:
                    raise ValueError(f"a required argument follows an optional one: {syntax!r}")
                required += 1
            rest = bool(match.group(3))
        return cls(required, optional, rest)

    def split(self, command_line) -> list[str] | None:
        """The argument values, or None when their number does not fit."""
        if not (self.required or self.optional):  # most commands take none
            return None if command_line.args else []
        total = self.required + self.optional
        words = command_line.arguments(total, rest_of_line=self.rest_of_line)
        if not self.required <= len(words) <= total:
            return None
        return words


Handler = Callable[..., Reply]

#: Names of the worker pools a blocking command runs in (see ``Command.blocks``).
STORE_POOL = "store"  # waits for a store transaction: many at once, each mostly idle
AUTH_POOL = "auth"  # hashes a password (scrypt, ~16 MB each): a few at once, memory stays bounded


def when_stored_user(session) -> str | None:
    """``blocks`` of a command that touches the store only for a registered (non-guest) user.

    Logging such a user out touches the store too (it releases what they hold), so this also
    says where ``Session.logout`` and ``Session.close`` must run.
    """
    user = session.user
    if session.services.store is None or user is None or user.is_guest:
        return None
    return STORE_POOL


@dataclass(frozen=True)
class Command:
    """One verb: its syntax, who may use it, its help and its handler.

    ``handler(session, *args)`` returns the reply; ``roles`` empty means any
    logged-in user (when ``login``) or anybody. ``blocks(session)`` names the
    worker pool (:data:`STORE_POOL`, :data:`AUTH_POOL`) the handler must run in
    because it may block (a store transaction, a password hash), or returns
    None when it runs at once; an event loop then runs it off the loop.
    """

    verb: str
    syntax: str
    summary: str
    handler: Handler
    login: bool = False
    roles: frozenset[str] = frozenset()
    detail: str = ""
    blocks: Callable[..., str | None] | None = None
    #: True for a command that changes state (BET, READ, ...): labelled, it runs once per label
    #: (docs/PROTOCOL.md 9a); a labelled command that changes nothing only has its label echoed.
    changes: bool = False
    #: ``available(session)``: False hides the command from HELP and answers it 502 (AUTH without
    #: a certificate); None: always available.
    available: Callable[..., bool] | None = None
    args: ArgSpec = field(init=False)

    def __post_init__(self):
        if not (1 <= len(self.verb) <= 4 and self.verb.isalpha() and self.verb.isupper()):
            raise ValueError(f"a verb is 1-4 upper-case letters: {self.verb!r}")
        object.__setattr__(self, "args", ArgSpec.from_syntax(self.syntax))

    @property
    def usage(self) -> str:
        return f"{self.verb} {self.syntax}".rstrip()


class CommandTable:
    """An ordered set of commands; HELP lists them in the order they were added."""

    def __init__(self, commands=()):
        self._commands: dict[str, Command] = {}
        #: ``get(verb)``: the command or None (the dict's own method: called once per command line).
        self.get = self._commands.get
        for command in commands:
            self.add(command)

    def add(self, command: Command) -> None:
        if command.verb in self._commands:
            raise ValueError(f"verb {command.verb} registered twice")
        self._commands[command.verb] = command

    def __iter__(self):
        return iter(self._commands.values())

    def __len__(self) -> int:
        return len(self._commands)
