"""Errors shared across layers."""


class StartError(Exception):
    """The daemon cannot start; the message is the one line the operator sees."""
