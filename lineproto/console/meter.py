"""client.py programs for the meter service (placeholder until its issue lands)."""


def add_parsers(programs, add_address) -> None:
    """Add this module's subcommands."""
