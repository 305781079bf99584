"""The meters service's commands (placeholder until its issue lands)."""

COMMANDS = ()
ERROR_CODES = ()


def add_arguments(parser) -> None:
    """Daemon options of this service."""


def install(services, options) -> None:
    """Register this service's commands, errors, hooks and domain objects on ``services``."""
    for command in COMMANDS:
        services.table.add(command)
    services.error_codes.extend(ERROR_CODES)
