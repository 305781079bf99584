"""What a request brings: its body (the JSON, or for a login a form, a resource takes, read and
checked once here) and its addresses (the browser's, for the daemon's PROXY header).

A body that is not what the resource takes is a 400 (415 when it is not JSON at all), with the
gateway's reason, before anything reaches the daemon; what only the daemon knows (the layout, the
limits, the chips) is the daemon's to refuse.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from .statuses import ApiError

#: Largest request body read, in bytes: a list of 200 bets fits many times over.
MAX_BODY = 64 * 1024
#: Bets one POST /bet may list: the daemon's most open bets per table.
MAX_BETS = 200

#: A whole number as the daemon takes one (a slip, a count, a reading): 1 to 18 digits.
DIGITS = re.compile(r"[0-9]{1,18}")


def peer(request: web.Request) -> tuple[str, int] | None:
    """The browser's address and port (for the daemon's PROXY header), or None."""
    transport = request.transport
    name = transport.get_extra_info("peername") if transport is not None else None
    return (name[0], name[1]) if isinstance(name, tuple) else None


def local(request: web.Request) -> tuple[str, int] | None:
    """The gateway's address and port the browser connected to."""
    transport = request.transport
    name = transport.get_extra_info("sockname") if transport is not None else None
    return (name[0], name[1]) if isinstance(name, tuple) else None


async def body_of(request: web.Request, form: bool = False) -> dict[str, Any]:
    """The request's JSON object (or, where ``form``, a form's fields); 400 for anything else."""
    kind = request.content_type
    try:
        if form and kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return {key: value for key, value in (await request.post()).items() if isinstance(value, str)}
        if kind != "application/json":
            raise ApiError(415, 0, "send JSON (Content-Type: application/json)")
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise ApiError(400, 0, f"the body is not JSON: {exc}") from None
    except UnicodeDecodeError:
        raise ApiError(400, 0, "the body is not UTF-8") from None
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, 0, f"the body is over {MAX_BODY} bytes") from None
    if isinstance(body, list) and not form:
        return {"list": body}
    if not isinstance(body, dict):
        raise ApiError(400, 0, "the body is a JSON object")
    return body


def bet_list(body: dict[str, Any]) -> list[tuple[str, int]]:
    """``{"bet", "amount"}`` or a list of them, checked: each bet one or more words without a comma, each
    amount a whole number above 0 (the daemon checks the rest: the layout, the limits, the chips)."""
    items = body["list"] if "list" in body and len(body) == 1 else [body]
    if not items:
        raise ApiError(400, 0, "the list of bets is empty")
    if len(items) > MAX_BETS:
        raise ApiError(400, 0, f"at most {MAX_BETS} bets at once")
    wanted = []
    for item in items:
        if not isinstance(item, dict) or set(item) != {"bet", "amount"}:
            raise ApiError(400, 0, 'a bet is {"bet": "RED", "amount": 5}')
        bet, amount = item["bet"], item["amount"]
        if not isinstance(bet, str) or not bet.strip() or "," in bet or not bet.isprintable():
            raise ApiError(400, 0, 'a bet is named by text such as "RED" or "SPLIT 17-18"')
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise ApiError(400, 0, "an amount is a whole number of chips above 0")
        wanted.append((" ".join(bet.split()), amount))
    return wanted


def is_reading(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, str) and bool(DIGITS.fullmatch(value))
