"""Domain errors to reply codes, in one place.

Handlers raise domain exceptions; dispatch turns them into replies here, so a
reader finds every refusal's code in one table.
"""

from ..wire import Reply


class CommandError(Exception):
    """A handler's refusal: reply ``code`` with ``text``."""

    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code = code
        self.text = text


#: (exception type, reply code), most specific first.
ERROR_CODES: tuple[tuple[type[BaseException], int], ...] = ()


def reply_for_error(exc: BaseException) -> Reply | None:
    """The reply for a known error, or None for an unexpected one (a bug)."""
    if isinstance(exc, CommandError):
        return Reply(exc.code, (exc.text,))
    for exc_type, code in ERROR_CODES:
        if isinstance(exc, exc_type):
            return Reply(code, (str(exc),))
    return None
