"""The daemon's replies as the gateway's JSON: from the reply shapes (lineproto.wire.shapes) to dicts.

Each JSON form is made here once, from the shape the client library parses with, so the
gateway never reads a reply's text by hand. The events (610-650) are read with the shapes'
``event_fields``; LIST's reply has no shape in lineproto.wire.shapes yet: its templates are here, as
:class:`~lineproto.wire.shapes.LineShape` s of the text docs/PROTOCOL.md section 12 gives.
"""

from __future__ import annotations

import re
from typing import Any

from ..wire import ProtocolError, Reply
from ..wire.reply import Event
from ..wire.shapes import (
    COUNT,
    WORD,
    Accepted,
    Cleared,
    Field,
    History,
    HistoryCredit,
    LineShape,
    OpenBets,
    PlacedBet,
    Receipt,
    Spin,
    event_fields,
)

JSON = dict[str, Any]


def pocket(number: str, properties: tuple[str, ...]) -> JSON:
    """A pocket as ``/wheel`` gives it, from the words SPIN writes after it (``red even high dozen3 column2``,
    ``green``): the zeros have no parity, half, dozen nor column (null)."""
    if properties[:1] == ("green",) or len(properties) < 5:
        return {"number": number, "color": "green", "even": None, "high": None, "dozen": None, "column": None}
    color, parity, half, dozen, column = properties[:5]
    return {
        "number": number,
        "color": color,
        "even": parity == "even",
        "high": half == "high",
        "dozen": int(dozen.removeprefix("dozen")),
        "column": int(column.removeprefix("column")),
    }


def spin(result: Spin) -> JSON:
    return {
        "pocket": pocket(result.pocket, result.properties),
        "bets": [
            {"bet": o.bet, "amount": o.amount, "outcome": "win" if o.won else "lose", "returned": o.returned}
            for o in result.outcomes
        ],
        "bankroll": result.bankroll,
        "rounds": result.rounds,
        "net": result.net,
        "nonce": result.nonce,
    }


def open_bets(bets: OpenBets) -> JSON:
    return {
        "wheel": bets.wheel,
        "bets": [{"bet": b.bet, "amount": b.amount, "pays": b.payout} for b in bets.bets],
        "staked": bets.staked,
        "bankroll": bets.bankroll,
    }


def placed(bets: list[PlacedBet]) -> JSON:
    return {
        "placed": [{"bet": b.bet, "amount": b.amount, "pays": b.payout, "slip": b.slip} for b in bets],
        "bankroll": bets[-1].bankroll,
    }


def cleared(result: Cleared) -> JSON:
    return {"cleared": result.bets, "returned": result.returned, "bankroll": result.bankroll}


def receipt(slip: Receipt) -> JSON:
    return dict(slip._asdict())


def history(entries: History) -> JSON:
    listed: list[JSON] = []
    for entry in entries.entries:
        if isinstance(entry, HistoryCredit):
            listed.append({"kind": "credit", **entry._asdict()})
            continue
        listed.append(
            {
                "kind": "round",
                "round": entry.round,
                "table": entry.table,
                "at": entry.at,
                "pocket": pocket(entry.pocket, entry.properties),
                "before": entry.before,
                "after": entry.after,
                "net": entry.net,
                "bets": [
                    {
                        "slip": b.slip,
                        "bet": b.bet,
                        "amount": b.amount,
                        "outcome": "win" if b.won else "lose",
                        "returned": b.returned,
                    }
                    for b in entry.bets
                ],
                "fair": None if entry.fair is None else dict(entry.fair._asdict()),
            }
        )
    return {"player": entries.player, "entries": listed}


def accepted(result: Accepted) -> JSON:
    return {"mine": result.mine, "total": result.total}


# --------------------------------------------------------------------------
# Shared tables: LIST and the events
# --------------------------------------------------------------------------

_ROW = ("name", "wheel", "minimum", "maximum", "seated", "round", "state", "rest")
_TABLE_LINE = LineShape(
    "{name}: {wheel} wheel, bets {minimum}-{maximum} chips, {seated} seated, round {round}, {state}{rest}",
    _ROW,
    name=WORD,
    wheel=WORD,
    minimum=COUNT,
    maximum=COUNT,
    seated=COUNT,
    round=COUNT,
    state=Field(r"idle|betting|closed|spinning", str, str),
    rest=Field(r".*", str, str),
)
_SECONDS_LEFT = re.compile(r", ([0-9]+) s left")
_SEED_HASH = re.compile(r", server-seed-hash ([0-9a-f]{64})")
_LIST_TAIL = LineShape("{count} tables{rest}", ("count", "rest"), count=COUNT, rest=Field(r".*", str, str))


def tables(reply: Reply) -> JSON:
    """LIST's 211: every table (name, wheel, limits, seated, round, state, seconds left, seed hash) and
    the table this session is at (null: its own)."""
    if reply.code != 211 or len(reply.lines) < 2 or reply.lines[0] != "Tables:":
        raise ProtocolError(f"expected LIST's 211 reply, got {str(reply)[:80]!r}")
    listed = []
    for line in reply.lines[1:-1]:
        row = _TABLE_LINE.parse(line)
        rest = row.pop("rest")
        seconds = _SECONDS_LEFT.search(rest)
        seed = _SEED_HASH.search(rest)
        row["seconds_left"] = int(seconds.group(1)) if seconds else None
        row["server_seed_hash"] = seed.group(1) if seed else None
        listed.append(row)
    tail = _LIST_TAIL.parse(reply.lines[-1])["rest"]
    return {"tables": listed, "at": tail.removeprefix("; you are at ") or None}


def event(item: Event) -> JSON:
    """An event as ``/events`` sends it: code, text and the fields its template names (none when unknown)."""
    body: JSON = {"code": item.code, "text": item.text}
    fields = event_fields(item.code, item.text)
    if "properties" in fields:
        fields["pocket"] = pocket(fields["pocket"], fields.pop("properties"))
    body.update(fields)
    return body
