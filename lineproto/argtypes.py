"""Argument types for the command lines (daemon and clients): a bad value is one argparse line, exit 2."""

import argparse
import math


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A number of seconds greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    if math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds: {text!r}")
    return value


def password_cost(text: str) -> int:
    """scrypt's N: a power of two, at least 1024."""
    value = positive_int(text)
    if value < 1024 or value & (value - 1):
        raise argparse.ArgumentTypeError(f"must be a power of two of 1024 or more: {text!r}")
    return value


def lock_budget(text: str) -> int:
    """A lock threshold: at least 2 (the first failure is never a lock)."""
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be 2 or more: {text!r}")
    return value


def port_number(text: str) -> int:
    """A TCP port, 0-65535 (0: any free port, for a server)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535: {text!r}")
    return value


def connect_port(text: str) -> int:
    """A TCP port to connect to, 1-65535 (port 0 means "any free port" only to a server)."""
    try:
        value = port_number(text)
    except argparse.ArgumentTypeError:
        value = 0
    if value == 0:
        raise argparse.ArgumentTypeError(f"a port to connect to is 1-65535: {text!r}")
    return value


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error: ``prog: error: what is wrong (prog --help for usage)``, exit 2.

    argparse's own error prints the whole usage block first, which buries the line that says
    what went wrong.
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} ({self.prog} --help for usage)\n")
