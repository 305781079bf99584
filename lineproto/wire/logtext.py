"""Client text made safe for a log line.

Whatever a client sends may end up in the operator's log: a user name, the
first word of a refused line. Control characters (ESC, CR, ...) would reach the
operator's terminal, and a long line would blow up the log, so client text is
escaped and clipped here before any log call sees it.
"""

#: Characters of client text kept in one log field; the rest is cut and marked with "...".
LOG_FIELD_CHARS = 64


def for_log(text: str, limit: int = LOG_FIELD_CHARS) -> str:
    """``text`` as printable ASCII: backslash escapes for everything else, at most ``limit`` characters."""
    clipped = text[:limit]
    escaped = clipped.encode("unicode_escape").decode("ascii")
    return escaped + "..." if len(text) > limit else escaped
