"""Typed client methods for the roulette service (a mixin over Connection)."""


class RouletteCommands:
    """Mixin: needs ``command``/``command_args`` from Connection."""
