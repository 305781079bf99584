"""Shared tables in the SQLite store: round ids, registered players' bets in a round, settlement, refunds.

Every method is one transaction of the store's writer (``SqliteStore.run``),
durable when it returns:

- :meth:`StoredTables.place` takes a bet's chips from the player's bankroll and
  the player's next slip (``players.slips``, the counter private bets take theirs
  from) and records the bet in the round (``shared_bets``, state 0: open);
- :meth:`StoredTables.take_back` gives an open round's bets back (CLR; state 3:
  cleared, kept for the bets' receipts);
- :meth:`StoredTables.settle` settles the whole table's round at once: every
  player's chips back, the bets marked settled with what each returned, one ``shared_results`` row per
  player, and the table's last round id; nothing of it is told to anyone before
  it is committed;
- :meth:`StoredTables.refund_unsettled` runs at start: a round the daemon died in
  (bets still open) gives every bet's chips back, each logged.

Chips are conserved per player: bankroll + private open bets + shared open bets
== start bankroll + the private spins' and the shared results' (returned - staked);
:meth:`StoredTables.audit` gives the shared side of that sum.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from ..domain.meters import utc_now
from ..domain.roulette import AMERICAN, Limits, OpenBet, SpinResult, parse_bet
from ..domain.tables import settle_bets
from .locks import lock_players

log = logging.getLogger("lineproto.store.tables")

OPEN, SETTLED, REFUNDED, CLEARED = 0, 1, 2, 3


class StoredTables:
    """The shared tables' part of a :class:`~lineproto.store.SqliteStore` (see the module docstring)."""

    def __init__(self, store):
        self.store = store

    def last_rounds(self) -> dict[str, int]:
        """Each table's highest round id so far (settled, or holding bets)."""

        def read(connection) -> dict[str, int]:
            rounds = dict(connection.execute("SELECT name, last_round FROM shared_tables").fetchall())
            highest_bets = connection.execute("SELECT table_name, max(round) FROM shared_bets GROUP BY table_name")
            for name, highest in highest_bets:
                rounds[name] = max(rounds.get(name, 0), highest)
            return rounds

        return self.store.run(read)

    def bankroll(self, player: str, start_bankroll: int) -> int:
        """The player's bankroll (``start_bankroll`` if they never played)."""

        def read(connection) -> int:
            row = connection.execute("SELECT bankroll FROM players WHERE name = ?", (player,)).fetchone()
            return row[0] if row else start_bankroll

        return self.store.run(read)

    def place(
        self, player: str, start_bankroll: int, table: str, place: Callable[[int], tuple[OpenBet, int, int]]
    ) -> tuple[OpenBet, int]:
        """``place(bankroll) -> (bet, bankroll after, round)`` and its record, in one transaction.

        The bet returned carries the player's next slip, taken in the same transaction.
        """

        def operation(connection) -> tuple[OpenBet, int]:
            bankroll = _ensure_player(connection, player, start_bankroll)
            open_bet, after, round_id = place(bankroll)
            (slip,) = connection.execute("SELECT slips + 1 FROM players WHERE name = ?", (player,)).fetchone()
            connection.execute("UPDATE players SET bankroll = ?, slips = ? WHERE name = ?", (after, slip, player))
            connection.execute(
                "INSERT INTO shared_bets (table_name, round, player, bet, amount, slip) VALUES (?, ?, ?, ?, ?, ?)",
                (table, round_id, player, open_bet.bet.name, open_bet.amount, slip),
            )
            return replace(open_bet, slip=slip), after

        return self.store.run(operation)

    def take_back(self, player: str, table: str, round_id: int) -> tuple[int, int]:
        """Mark the player's open bets of the round cleared and give their chips back: (chips, bankroll after)."""

        def operation(connection) -> tuple[int, int]:
            lock_players(connection, player)
            where = "table_name = ? AND round = ? AND player = ? AND state = 0"
            chips = connection.execute(
                f"SELECT coalesce(sum(amount), 0) FROM shared_bets WHERE {where}", (table, round_id, player)
            ).fetchone()[0]
            connection.execute(f"UPDATE shared_bets SET state = {CLEARED} WHERE {where}", (table, round_id, player))
            connection.execute("UPDATE players SET bankroll = bankroll + ? WHERE name = ?", (chips, player))
            row = connection.execute("SELECT bankroll FROM players WHERE name = ?", (player,)).fetchone()
            return chips, row[0] if row else 0

        return self.store.run(operation)

    def settle(self, table: str, round_id: int, pocket: str, wheel: str, limits: Limits) -> dict[str, SpinResult]:
        """Settle every bet of the round kept here against ``pocket``: one transaction for the table.

        The bets are the ones committed (what the players were told was accepted), settled by the
        domain's rules; bankrolls credited, bets marked settled, a result row per player, the
        table's last round recorded. Returns each player's result.
        """

        def operation(connection) -> dict[str, SpinResult]:
            rows = connection.execute(
                "SELECT id, player, bet, amount, slip FROM shared_bets "
                "WHERE table_name = ? AND round = ? AND state = 0 ORDER BY id",
                (table, round_id),
            ).fetchall()
            bets: dict[str, list[OpenBet]] = {}
            ids: dict[str, list[int]] = {}
            for bet_id, player, name, amount, slip in rows:
                bets.setdefault(player, []).append(OpenBet(parse_bet(name, wheel), amount, slip))
                ids.setdefault(player, []).append(bet_id)
            lock_players(connection, *bets)
            at = utc_now().isoformat(timespec="seconds")
            results: dict[str, SpinResult] = {}
            for player, open_bets in bets.items():
                result = results[player] = settle_bets(wheel, limits, open_bets, pocket)
                connection.execute(
                    "UPDATE players SET bankroll = bankroll + ? WHERE name = ?", (result.returned, player)
                )
                connection.execute(
                    "INSERT INTO shared_results "
                    "(table_name, round, player, pocket, at, staked, returned, bankroll_after, wheel, after_spin) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, (SELECT bankroll FROM players WHERE name = ?), ?, "
                    "(SELECT coalesce(max(id), 0) FROM spins WHERE player = ?))",
                    (table, round_id, player, pocket, at, result.staked, result.returned, player, wheel, player),
                )
                connection.executemany(
                    f"UPDATE shared_bets SET state = {SETTLED}, returned = ? WHERE id = ?",
                    [(o.returned, i) for o, i in zip(result.outcomes, ids[player], strict=True)],
                )
            _record_round(connection, table, round_id)
            return results

        return self.store.run(operation)

    def refund_unsettled(self) -> list[tuple[str, int, str, int]]:
        """Give back every bet still open (the daemon died before its round was settled).

        Returns (table, round, player, chips) per player and round; each is logged.
        """

        def operation(connection) -> list[tuple[str, int, str, int]]:
            rows = connection.execute(
                "SELECT table_name, round, player, sum(amount) FROM shared_bets WHERE state = 0 "
                "GROUP BY table_name, round, player ORDER BY table_name, round, player"
            ).fetchall()
            lock_players(connection, *(row[2] for row in rows))
            at = utc_now().isoformat(timespec="seconds")
            for table, round_id, player, chips in rows:
                connection.execute("UPDATE players SET bankroll = bankroll + ? WHERE name = ?", (chips, player))
                bankroll = connection.execute("SELECT bankroll FROM players WHERE name = ?", (player,)).fetchone()[0]
                connection.execute(
                    "INSERT INTO shared_results "
                    "(table_name, round, player, pocket, at, staked, returned, bankroll_after, after_spin) "
                    "VALUES (?, ?, ?, NULL, ?, ?, ?, ?, (SELECT coalesce(max(id), 0) FROM spins WHERE player = ?)) "
                    "ON CONFLICT (table_name, round, player) DO UPDATE SET pocket = NULL, at = excluded.at, "
                    "staked = excluded.staked, returned = excluded.returned, "
                    "bankroll_after = excluded.bankroll_after, after_spin = excluded.after_spin",
                    (table, round_id, player, at, chips, chips, bankroll, player),
                )
                _record_round(connection, table, round_id)
            connection.execute(f"UPDATE shared_bets SET state = {REFUNDED}, returned = amount WHERE state = 0")
            return [tuple(row) for row in rows]

        refunds = self.store.run(operation)
        for table, round_id, player, chips in refunds:
            log.warning("refunded %d chips to %s: round %d at %s was never settled", chips, player, round_id, table)
        return refunds

    def open_bets(self, player: str) -> list[tuple[str, int, str, int]]:
        """The player's bets in rounds not settled yet: (table, round, bet, amount)."""
        return self.store.run(
            lambda c: c.execute(
                "SELECT table_name, round, bet, amount FROM shared_bets WHERE player = ? AND state = 0 ORDER BY id",
                (player,),
            ).fetchall()
        )

    def audit(self, player: str) -> dict[str, int]:
        """The player's shared-table chips: ``open`` (staked, not settled), ``staked`` and ``returned`` settled."""

        def read(connection) -> dict[str, int]:
            open_chips = connection.execute(
                "SELECT coalesce(sum(amount), 0) FROM shared_bets WHERE player = ? AND state = 0", (player,)
            ).fetchone()[0]
            staked, returned = connection.execute(
                "SELECT coalesce(sum(staked), 0), coalesce(sum(returned), 0) FROM shared_results WHERE player = ?",
                (player,),
            ).fetchone()
            return {"open": open_chips, "staked": staked, "returned": returned}

        return self.store.run(read)


def _ensure_player(connection, player: str, start_bankroll: int) -> int:
    """The player's bankroll, locked until the transaction ends (``locks.lock_players``), creating
    their row (as their private table would) if they never played."""
    lock_players(connection, player)
    row = connection.execute("SELECT bankroll FROM players WHERE name = ?", (player,)).fetchone()
    if row is not None:
        return row[0]
    connection.execute(
        "INSERT INTO players (name, wheel, bankroll, rounds, start_bankroll) VALUES (?, ?, ?, 0, ?) "
        "ON CONFLICT (name) DO NOTHING",
        (player, AMERICAN, start_bankroll, start_bankroll),
    )
    lock_players(connection, player)
    return connection.execute("SELECT bankroll FROM players WHERE name = ?", (player,)).fetchone()[0]


def _record_round(connection, table: str, round_id: int) -> None:
    connection.execute(
        "INSERT INTO shared_tables (name, last_round) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET last_round = excluded.last_round "
        "WHERE shared_tables.last_round < excluded.last_round",
        (table, round_id),
    )
