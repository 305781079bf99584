"""Request labels: a client-chosen ``@<id> `` in front of a command line (sans-I/O).

``@r-17 READ G10001 5983`` is the command ``READ G10001 5983`` labelled ``r-17``.
A label is 1-64 characters of ``A-Za-z0-9._:-``. Its reply carries the label
right after the code on the reply's first line (``200 @r-17 Accepted ...``,
``211-@r-17 Status:``), so a pipelining client matches replies to requests,
and a client that retries after a lost reply can ask for the same command
again: the daemon runs a labelled change once (docs/PROTOCOL.md, section 9a).

The label is parsed here, once; the session decides what it means.
"""

import re
from typing import NamedTuple

#: Longest label, in characters.
MAX_LABEL = 64

#: What a label may be made of (and no more than :data:`MAX_LABEL` of them).
LABEL_CHARACTERS = "A-Za-z0-9._:-"

_LABEL = re.compile(rf"[{LABEL_CHARACTERS}]{{1,{MAX_LABEL}}}")

LABEL_SYNTAX = f"a label is @ and 1-{MAX_LABEL} characters of {LABEL_CHARACTERS}, then a space and the command"


class LabelSyntaxError(ValueError):
    """A line begins with ``@`` but what follows is not a label and a command."""


class Labelled(NamedTuple):
    """A labelled line taken apart: the label and the command line after it."""

    label: str
    line: str


def is_labelled(line: str) -> bool:
    """True when ``line`` begins with ``@`` (a label, or a malformed one): one character compared."""
    return line[:1] == "@"


def split_label(line: str) -> Labelled:
    """The label and the rest of a line that :func:`is_labelled`.

    Raises :class:`LabelSyntaxError` when the label is empty, too long, has a
    character outside :data:`LABEL_CHARACTERS`, or is not followed by a space
    and a command.
    """
    label, space, rest = line[1:].partition(" ")
    if not is_label(label):
        raise LabelSyntaxError(LABEL_SYNTAX)
    rest = rest.strip(" \t")
    if not space or not rest:
        raise LabelSyntaxError(f"a label needs a command after it: @{label} <command>")
    return Labelled(label, rest)


def is_label(text: str) -> bool:
    """True when ``text`` is a valid label (without its ``@``)."""
    return _LABEL.fullmatch(text) is not None


def labelled_line(label: str, line: str) -> str:
    """The command line ``line`` with ``label`` in front (what a client sends)."""
    if not is_label(label):
        raise ValueError(f"not a label: {label!r} ({LABEL_SYNTAX})")
    return f"@{label} {line}"
