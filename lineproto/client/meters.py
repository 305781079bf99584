"""Typed client methods for the meters service (a mixin over Connection)."""


class MeterCommands:
    """Mixin: needs ``command``/``command_args`` from Connection."""
