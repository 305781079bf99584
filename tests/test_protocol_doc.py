"""Replay every ``session`` example of the protocol documents against a live daemon.

Format: a fenced block whose info string is ``session`` plus optional daemon
arguments; ``C:`` lines are sent, ``S:`` lines are expected reply lines as on
the wire. ``…`` in a line matches any text within the line; a line that is
exactly ``S: …`` matches any number (zero or more) of whole reply lines.
"""

import re
import shlex
from pathlib import Path

import pytest

from conftest import ROOT, RawConnection

DOCS = [ROOT / "docs" / "PROTOCOL.md", *sorted((ROOT / "docs" / "protocol").glob("*.md"))]
_BLOCK = re.compile(r"^```session(?P<args>[^\n]*)\n(?P<body>.*?)^```", re.M | re.S)
ELLIPSIS = "…"


def examples():
    found = []
    for path in DOCS:
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            args = tuple(shlex.split(match.group("args")))
            found.append(pytest.param(args, match.group("body"), id=f"{path.name}:{line}"))
    return found


def steps(body: str):
    """[(command or None for the greeting, [expected lines])]."""
    result = [(None, [])]
    for raw in body.splitlines():
        if not raw.strip():
            continue
        kind, _, text = raw.partition(": ")
        if raw in ("S: …", "S:…"):
            kind, text = "S", ELLIPSIS
        if kind == "C":
            result.append((text, []))
        elif kind == "S":
            result[-1][1].append(text)
        else:
            raise AssertionError(f"example line is neither C: nor S: {raw!r}")
    return result


def pattern(expected: list[str]) -> re.Pattern:
    regex, need_newline = "", False
    for line in expected:
        if line == ELLIPSIS:  # any number of whole lines
            regex += r"(?:\n[^\n]*)*?" if need_newline else r"(?:[^\n]*\n)*?"
            continue
        regex += ("\n" if need_newline else "") + "[^\\n]*".join(re.escape(p) for p in line.split(ELLIPSIS))
        need_newline = True
    return re.compile(regex)


@pytest.fixture(scope="module")
def daemons(engine):
    """One daemon per distinct argument list, shared by the examples using it."""
    import tempfile

    from conftest import Daemon, write_users_file

    running = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        users = write_users_file(tmp_path / "users.txt")

        def get(args):
            if args not in running:
                daemon = Daemon(tmp_path, "--users", str(users), *args, cwd=ROOT, engine=engine)
                running[args] = daemon
            return running[args]

        yield get
        for daemon in running.values():
            daemon.stop()


def test_documents_have_examples():
    assert len(examples()) >= 5


@pytest.mark.parametrize("args, body", examples())
def test_example_session(daemons, args, body):
    daemon = daemons(args)
    with RawConnection(daemon.port) as raw:
        for command, expected in steps(body):
            if command is not None:
                raw.send(command.encode("utf-8") + b"\r\n")
            reply = raw.reply()
            actual = str(reply)
            assert pattern(expected).fullmatch(actual), (
                f"after {command!r}\nexpected:\n" + "\n".join(expected) + f"\nactual:\n{actual}"
            )
