"""Turning handler errors into replies.

Handlers raise domain exceptions or :class:`CommandError`; dispatch turns them
into replies here. Each service's ``ERROR_CODES`` table sits next to its
commands, so a reader finds every refusal's code beside the command table.
"""

from ..wire import Reply


class CommandError(Exception):
    """A handler's refusal: reply ``code`` with ``text``."""

    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code = code
        self.text = text


def reply_for_error(exc: BaseException, error_codes) -> Reply | None:
    """The reply for a known error, or None for an unexpected one (a bug).

    ``error_codes`` is the services' ``(exception type, code)`` table: each
    service module declares its own ``ERROR_CODES`` beside its commands, most
    specific first, and they are joined in :func:`lineproto.commands.build_services`.
    """
    if isinstance(exc, CommandError):
        return Reply(exc.code, (exc.text,))
    for exc_type, code in error_codes:
        if isinstance(exc, exc_type):
            return Reply(code, (str(exc),))
    return None
