"""Pure domain logic: no sockets, no reply codes."""
