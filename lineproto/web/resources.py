"""The REST resources: roulette (the seeds' ``player``, ``bet``, ``wheel``), shared tables and meters.

Each resource turns a request into one daemon command on the session's own connection
(:meth:`~.app.Gateway.ask`) and the reply's shape into JSON (:mod:`.replies`); a refusal is raised
as the status table says (:mod:`.statuses`). One class per service, each listing its routes.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..wire import ProtocolError
from ..wire.shapes import ALL_JOBS_DONE, Accepted, Cleared, History, Job, OpenBets, PlacedBet, Receipt, Spin, Status
from . import replies
from .bodies import DIGITS, bet_list, body_of, is_reading
from .statuses import ApiError

if TYPE_CHECKING:
    from .app import Gateway

#: The wheels of ``GET /wheel/<kind>``.
WHEELS = ("american", "european")
#: Seconds between comment lines on an idle /events stream (so a vanished browser is noticed).
SSE_HEARTBEAT = 15.0

_WORD = re.compile(r"\S+")


def ok(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


class Roulette:
    """``/wheel/<kind>`` (no login), ``/player``, ``/bet``, ``/wheel``, ``/bet/<slip>``, ``/history``."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/wheel/{kind}", self.wheel),
            web.post("/wheel", self.spin),
            web.get("/player", self.player),
            web.get("/bet", self.bets),
            web.post("/bet", self.place),
            web.delete("/bet", self.clear),
            web.get("/bet/{slip}", self.slip),
            web.get("/history", self.history),
        ]

    async def wheel(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind not in WHEELS:
            raise ApiError(404, 0, f"no wheel {kind[:20]}: /wheel/american or /wheel/european")
        result = await self.gateway.wheels.spin(kind)
        return ok(replies.pocket(result.pocket, result.properties))

    async def spin(self, request: web.Request) -> web.Response:
        return ok(replies.spin(Spin.from_reply(await self.gateway.ask(request, "SPIN"))))

    async def player(self, request: web.Request) -> web.Response:
        values = Status.from_reply(await self.gateway.ask(request, "STAT")).texts()
        if "bankroll" not in values:
            raise ApiError(403, 532, "Permission denied: the player resource needs the player role")
        return ok(
            {
                "user": values.get("user"),
                "wheel": values["wheel"],
                "bankroll": int(values["bankroll"]),
                "rounds": int(values["rounds"]),
                "open_bet_count": int(values["open-bet-count"]),
                "open_bet_chips": int(values["open-bet-chips"]),
            }
        )

    async def bets(self, request: web.Request) -> web.Response:
        return ok(replies.open_bets(OpenBets.from_reply(await self.gateway.ask(request, "BETS"))))

    async def place(self, request: web.Request) -> web.Response:
        """One bet or a list, all placed or none: one BET, or one MBET (the daemon's atomic list)."""
        session = await self.gateway.who(request)
        wanted = bet_list(await body_of(request))
        if len(wanted) == 1:
            bet, amount = wanted[0]
            reply = await self.gateway.command(session, f"BET {bet} {amount}")
        else:
            listed = ", ".join(f"{bet} {amount}" for bet, amount in wanted)
            reply = await self.gateway.command(session, f"MBET {listed}")
        placed = [PlacedBet.from_line(line) for line in reply.lines]
        if reply.code != PlacedBet.CODE or len(placed) != len(wanted):
            raise ProtocolError(f"expected {len(wanted)} placed bets, got {str(reply)[:80]!r}")
        return ok(replies.placed(placed), status=201)

    async def clear(self, request: web.Request) -> web.Response:
        return ok(replies.cleared(Cleared.from_reply(await self.gateway.ask(request, "CLR"))))

    async def slip(self, request: web.Request) -> web.Response:
        number = request.match_info["slip"]
        if not DIGITS.fullmatch(number):
            raise ApiError(400, 0, "a slip is a whole number: GET /bet/7")
        return ok(replies.receipt(Receipt.from_reply(await self.gateway.ask(request, f"SLIP {int(number)}"))))

    async def history(self, request: web.Request) -> web.Response:
        count = request.query.get("count")
        if count is not None and not DIGITS.fullmatch(count):
            raise ApiError(400, 0, "count is a whole number, 1 to 100: GET /history?count=10")
        line = "HIST" if count is None else f"HIST {int(count)}"
        return ok(replies.history(History.from_reply(await self.gateway.ask(request, line))))


class Tables:
    """The shared tables: ``/tables``, join, leave, chat, and ``/events`` (server-sent events)."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/tables", self.tables),
            web.post("/tables/leave", self.leave),
            web.post("/tables/chat", self.chat),
            web.post("/tables/{name}/join", self.join),
            web.get("/events", self.events),
        ]

    async def tables(self, request: web.Request) -> web.Response:
        return ok(replies.tables(await self.gateway.ask(request, "LIST")))

    async def join(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not _WORD.fullmatch(name):
            raise ApiError(400, 0, "a table's name is one word")
        reply = await self.gateway.ask(request, f"JOIN {name}")
        return ok({"table": name, "text": reply.text})

    async def leave(self, request: web.Request) -> web.Response:
        return ok({"text": (await self.gateway.ask(request, "LEAV")).text})

    async def chat(self, request: web.Request) -> web.Response:
        session = await self.gateway.who(request)
        text = (await body_of(request)).get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, 0, 'chat with {"text": "..."}')
        return ok({"text": (await self.gateway.command(session, f"CHAT {text}")).text})

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: every 6yz line the session's connection gets, as ``event: <code>`` and JSON data."""
        session = await self.gateway.who(request)
        queue = session.upstream.subscribe()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        try:
            await response.prepare(request)
            await response.write(b": lineproto events\n\n")
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), SSE_HEARTBEAT)
                except TimeoutError:
                    await response.write(b": still here\n\n")
                    session.touch()
                    continue
                if item is None:
                    break
                data = json.dumps(replies.event(item))
                await response.write(f"event: {item.code}\ndata: {data}\n\n".encode())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            session.upstream.unsubscribe(queue)
        return response


class Meters:
    """The meter reader's ``/meter/job``, ``/meter/reading`` and ``/meter/status``."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/meter/job", self.job),
            web.post("/meter/reading", self.reading),
            web.get("/meter/status", self.meter_status),
        ]

    async def job(self, request: web.Request) -> web.Response:
        reply = await self.gateway.ask(request, "JOB")
        if reply.code == ALL_JOBS_DONE:
            return ok({"meter": None, "done": True, "text": reply.text})
        return ok({"meter": Job.from_reply(reply).meter, "done": False})

    async def reading(self, request: web.Request) -> web.Response:
        session = await self.gateway.who(request)
        body = await body_of(request)
        meter, reading, reason, when = body.get("meter"), body.get("reading"), body.get("reason"), body.get("time")
        if not isinstance(meter, str) or not _WORD.fullmatch(meter):
            raise ApiError(400, 0, 'a reading names its meter: {"meter": "G10001", "reading": 5983}')
        if reason is not None and reading is None:
            if not isinstance(reason, str) or not reason.strip():
                raise ApiError(400, 0, 'a reason is text: {"meter": "G10001", "reason": "Dog in the yard"}')
            line = f"READ {meter} - {reason}"
        elif reason is None and is_reading(reading):
            line = f"READ {meter} {reading}"
            if when is not None:
                if not isinstance(when, str) or not when.strip():
                    raise ApiError(400, 0, 'a time is ISO-8601 text: "2026-11-22T09:15Z"')
                line += f" {when}"
        else:
            raise ApiError(400, 0, "send a reading (a whole number, 0 or more) or a reason, not both")
        return ok(replies.accepted(Accepted.from_reply(await self.gateway.command(session, line))))

    async def meter_status(self, request: web.Request) -> web.Response:
        values = Status.from_reply(await self.gateway.ask(request, "STAT")).texts()
        if "my-readings" not in values:
            raise ApiError(403, 532, "Permission denied: the meter status needs the admin or reader role")
        return ok(
            {
                "user": values.get("user"),
                "my_readings": int(values["my-readings"]),
                "all_readings": int(values["all-readings"]),
            }
        )
