"""The one table from the daemon's reply codes to HTTP statuses, and the gateway's JSON error.

Every refusal the gateway passes on is ``{"error": {"code": <daemon code>, "text": <the
daemon's reply text>}}`` with the status this table gives; the gateway's own refusals (bad
JSON, no login, CSRF) carry code 0 and the gateway's reason. docs/WEB.md shows the table.
"""

from __future__ import annotations

import json

from ..wire import Reply

#: Daemon reply code -> HTTP status, for the codes that need their own; the rest go by class
#: (:data:`BY_CLASS`). docs/WEB.md, "Statuses", is this table.
STATUSES: dict[int, int] = {
    421: 503,  # the daemon is closing the connection (idle, full, shutting down)
    430: 429,  # login locked for N seconds: too many failed logins
    450: 409,  # no job now; no more bets in this round; chat rate limit
    451: 503,  # storage unavailable: nothing changed, try later
    452: 503,  # storage full
    500: 400,  # line not understood
    501: 400,  # wrong arguments
    502: 501,  # command not available on this daemon
    503: 409,  # bad sequence: not at a table, SPIN at a shared table
    504: 400,  # unknown security mechanism
    522: 403,  # TLS required first
    530: 401,  # not logged in, login incorrect
    532: 403,  # the user lacks the role
    534: 409,  # below the table minimum / above the maximum
    535: 409,  # not enough chips
    536: 409,  # not on this wheel's layout
    537: 409,  # bets are open
    538: 409,  # too many open bets
    550: 404,  # no such meter, slip, table, player
    554: 409,  # the label was used for another command
}
#: The status of a code the table does not name: 4yz (try later) 503, 5yz (as sent, never) 400.
BY_CLASS = {4: 503, 5: 400}


def http_status(code: int) -> int:
    """The HTTP status for a daemon reply code of 4yz or 5yz."""
    return STATUSES.get(code, BY_CLASS.get(code // 100, 502))


def error_body(code: int, text: str) -> str:
    """The JSON error body: the daemon's code (0: the gateway's own refusal) and the reason."""
    return json.dumps({"error": {"code": code, "text": text}})


class ApiError(Exception):
    """A request refused: ``status`` with :func:`error_body` of ``code`` and ``text``; ``headers`` to add."""

    def __init__(self, status: int, code: int, text: str, headers: dict[str, str] | None = None):
        super().__init__(text)
        self.status, self.code, self.text = status, code, text
        self.headers = dict(headers or {})

    @classmethod
    def from_reply(cls, reply: Reply) -> ApiError:
        """The refusal for a daemon's 4yz/5yz reply: its code, its text (the lines joined by LF)."""
        return cls(http_status(reply.code), reply.code, reply.text)


def refused(reply: Reply) -> Reply:
    """``reply`` if it is 1yz-3yz, else raise its :class:`ApiError`."""
    if reply.code >= 400:
        raise ApiError.from_reply(reply)
    return reply
