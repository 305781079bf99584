"""``client.py play`` (a roulette prompt for people) and ``client.py simulate`` (strategies).

``simulate`` plays as guests by default: each simulated player is one
connection logged in as ``guest`` with its own 100-chip play-money bankroll, so
``--budget`` (what a strategy may lose) defaults to the bankroll the server
reports and may not exceed it. With ``--user NAME`` every simulated player logs
in as that registered player; they then share one bankroll, so the budgets of
all players together may not exceed it (the default budget is that bankroll
divided among the players). Each player's final bankroll in the summary is its
own budget plus what it won or lost.
"""

from __future__ import annotations

import argparse
import getpass
import math
import sys
import threading
from dataclasses import dataclass
from fractions import Fraction

from ..argtypes import positive_int
from ..client import Client, ClientError, PermanentError, ReplyError
from ..domain.roulette import AMERICAN, EUROPEAN, house_edge, parse_bet
from ..strategies import STRATEGIES, make_strategy
from ..wire import ProtocolError

_PLAY_HELP = """\
  <bet> <amount>   put chips on a bet: red 10, 17 5, split 17-18 5, dozen2 20, basket 5
  spin             spin the wheel and settle the bets (an empty bet list spins too)
  bets             the bets on the table        clear   take every bet back
  wheel [american|european]   show or change the wheel (not while bets are open)
  help             this list                    quit    leave the table"""


def add_parsers(programs, add_address) -> None:
    play = programs.add_parser("play", help="interactive roulette table")
    add_address(play)
    play.add_argument("--user", default="guest",
                      help="log in as this player (asks the password); default guest, 100 play chips")
    play.add_argument("--wheel", choices=(AMERICAN, EUROPEAN), help="choose the wheel first")
    play.set_defaults(run=run_play)

    simulate = programs.add_parser(
        "simulate", help="run betting strategies on RED with concurrent players, print a summary")
    add_address(simulate)
    simulate.add_argument("--strategy", action="append", metavar="NAME",
                          help=f"{' | '.join(STRATEGIES)} (repeat or comma-separate for several; "
                               "default martingale)")
    simulate.add_argument("--players", type=positive_int, default=10, help="players per strategy (default %(default)s)")
    simulate.add_argument("--rounds", type=positive_int, default=100, help="most rounds per player (default %(default)s)")
    simulate.add_argument("--budget", type=positive_int,
                          help="chips each player may lose (default: the bankroll, shared out with --user)")
    simulate.add_argument("--base", type=positive_int, default=10, help="base stake (default %(default)s)")
    simulate.add_argument("--wheel", choices=(AMERICAN, EUROPEAN), default=AMERICAN,
                          help="default %(default)s")
    simulate.add_argument("--user", default="guest", help="log in as this player (default guest)")
    simulate.add_argument("--password", help="password of --user (asked if missing)")
    simulate.set_defaults(run=run_simulate)


def _reason(exc: BaseException) -> str:
    return exc.reply.text if isinstance(exc, ReplyError) else str(exc)


# --------------------------------------------------------------------------
# play
# --------------------------------------------------------------------------


def run_play(args) -> int:
    password = None if args.user == "guest" else getpass.getpass(f"Password for {args.user}: ")
    try:
        client = Client(args.host, args.port)
    except OSError as exc:
        print(f"cannot connect to {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        with client:
            client.login(args.user, password)
            info = client.table(args.wheel)
            table = client.bets()
            start = table.bankroll + table.staked
            print(f"Logged in as {args.user}: {start} chips. {info.wheel.capitalize()} wheel, "
                  f"bets {info.minimum}-{info.maximum} chips.")
            print("Type a bet and an amount (red 10), then spin; help lists the commands, quit leaves.")
            _play_loop(client)
            table = client.bets()
            print(f"You leave with {table.bankroll + table.staked} chips.")
    except ReplyError as exc:
        print(f"refused: {_reason(exc)}", file=sys.stderr)
        return 1
    except (ClientError, ProtocolError, OSError) as exc:
        print(f"connection lost: {exc}", file=sys.stderr)
        return 1
    return 0


def _play_loop(client: Client) -> None:
    interactive = sys.stdin.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
    while True:
        try:
            line = input("roulette> " if interactive else "")
        except (EOFError, KeyboardInterrupt):
            print()
            return
        words = line.split()
        if not words:
            continue
        word = words[0].lower()
        try:
            if word in ("quit", "q", "exit", "leave"):
                return
            if word in ("help", "?"):
                print(_PLAY_HELP)
            elif word == "spin":
                _show_spin(client.spin())
            elif word == "bets":
                table = client.bets()
                for open_bet in table.bets:
                    print(f"  {open_bet.bet} for {open_bet.amount} (pays {open_bet.payout}:1)")
                print(f"  {table.staked} chips on the table, {table.bankroll} in hand")
            elif word in ("clear", "clr"):
                cleared = client.clear()
                print(f"  {cleared.returned} chips back; bankroll {cleared.bankroll}")
            elif word in ("wheel", "table"):
                info = client.table(words[1] if len(words) > 1 else None)
                print(f"  {info.wheel} wheel, pockets {info.pockets}, bets {info.minimum}-{info.maximum} chips, "
                      f"house edge {info.house_edge}")
            else:
                if word == "bet":
                    words = words[1:]
                if len(words) < 2 or not words[-1].isdigit():
                    print("  say a bet and an amount, e.g. red 10 (help lists the commands)")
                    continue
                placed = client.bet(" ".join(words[:-1]), int(words[-1]))
                print(f"  {placed.bet} for {placed.amount} (pays {placed.payout}:1); bankroll {placed.bankroll}")
        except PermanentError as exc:
            print(f"  refused: {_reason(exc)}")
        except ValueError as exc:  # a line the client will not send (control characters)
            print(f"  not sent: {exc}")


def _show_spin(spin) -> None:
    print(f"  The ball lands on {spin.pocket} ({', '.join(spin.properties)})")
    for outcome in spin.outcomes:
        if outcome.won:
            print(f"    {outcome.bet} for {outcome.amount}: WIN, {outcome.returned} back")
        else:
            print(f"    {outcome.bet} for {outcome.amount}: lose")
    rounds = f"{spin.rounds} round" + ("" if spin.rounds == 1 else "s")
    net = f"{spin.net:+d}" if spin.net else "even"
    print(f"  Bankroll {spin.bankroll} ({net} this spin), {rounds} played")


# --------------------------------------------------------------------------
# simulate
# --------------------------------------------------------------------------


@dataclass
class PlayerResult:
    """One simulated player: its wallet is the budget plus what it won or lost."""

    strategy: str
    rounds: int = 0
    final: int = 0
    busted: bool = False  # stopped before the last round: the budget could not cover the next stake
    staked: int = 0
    returned: int = 0
    squares: int = 0  # sum of stake**2, for the standard error of the return to player
    error: str | None = None


def _strategy_names(values) -> list[str]:
    names = []
    for value in values or ["martingale"]:
        for name in value.split(","):
            key = name.strip().lower().replace("-", "")
            if key not in STRATEGIES:
                raise ValueError(f"unknown strategy {name!r}: choose {', '.join(STRATEGIES)}")
            if key not in names:
                names.append(key)
    return names


def _connect(args, password) -> Client:
    client = Client(args.host, args.port)
    try:
        client.login(args.user, password)
        client.table(args.wheel)
    except BaseException:
        client.close()
        raise
    return client


def run_simulate(args) -> int:
    try:
        names = _strategy_names(args.strategy)
    except ValueError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    password = None
    if args.user != "guest":
        password = args.password if args.password is not None else getpass.getpass(f"Password for {args.user}: ")
    total_players = args.players * len(names)
    try:
        with _connect(args, password) as probe:
            info = probe.table()
            table = probe.bets()
    except ReplyError as exc:
        print(f"simulate: refused: {_reason(exc)}", file=sys.stderr)
        return 1
    except (ClientError, ProtocolError, OSError) as exc:
        print(f"simulate: cannot play at {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    shared = args.user != "guest"
    available = table.bankroll // total_players if shared else table.bankroll
    budget = args.budget if args.budget is not None else available
    if budget > available or budget < 1:
        who = (f"{total_players} players sharing {args.user}'s {table.bankroll} chips" if shared
               else f"a guest, who has {table.bankroll} chips")
        print(f"simulate: a budget of {budget} is more than {available}, the most for {who}; "
              f"lower --budget{'' if shared else ', or play as a registered player with --user'}", file=sys.stderr)
        return 2
    if not info.minimum <= args.base <= min(info.maximum, budget):
        print(f"simulate: the base stake must be within the table limits {info.minimum}-{info.maximum} "
              f"and the budget {budget}", file=sys.stderr)
        return 2

    results = {name: [PlayerResult(name) for _ in range(args.players)] for name in names}
    threads = [
        threading.Thread(target=_play_strategy, args=(args, password, name, budget, info.maximum, result),
                         name=f"{name}-{index}", daemon=True)
        for name in names for index, result in enumerate(results[name])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    errors = [r.error for rs in results.values() for r in rs if r.error]
    print(f"Roulette simulation: {args.players} players per strategy, up to {args.rounds} rounds, "
          f"budget {budget}, base {args.base}, RED on the {args.wheel} wheel"
          f" (as {args.user})")
    print(summary_table(results, args.wheel))
    if errors:
        print(f"simulate: {len(errors)} players stopped on an error, first: {errors[0]}", file=sys.stderr)
        return 1
    return 0


def _play_strategy(args, password, name: str, budget: int, table_max: int, result: PlayerResult) -> None:
    strategy = make_strategy(name, args.base, table_max)
    wallet = budget
    try:
        with _connect(args, password) as client:
            while result.rounds < args.rounds:
                stake = strategy.next_stake(wallet)
                if stake is None:
                    result.busted = True
                    break
                client.bet("RED", stake)
                spin = client.spin()
                returned = spin.returned
                wallet += returned - stake
                result.rounds += 1
                result.staked += stake
                result.returned += returned
                result.squares += stake * stake
                strategy.record(returned > 0)
    except (ClientError, ProtocolError, OSError) as exc:
        result.error = _reason(exc)
    result.final = wallet


def theoretical_rtp(wheel: str) -> Fraction:
    """Return to player of a RED bet: 1 - house edge (36/38 American, 36/37 European)."""
    return 1 - house_edge(parse_bet("RED", wheel), wheel)


def rtp_standard_error(staked: int, squares: int, wheel: str) -> float:
    """Standard deviation of the measured return to player on RED bets.

    A bet of s returns 2s with probability p, else 0, independently of the
    stakes chosen before it, so Var(total returned) = 4 p (1 - p) sum(s**2).
    """
    if not staked:
        return math.nan
    p = float(theoretical_rtp(wheel)) / 2
    return 2 * math.sqrt(p * (1 - p) * squares) / staked


def summary_table(results: dict[str, list[PlayerResult]], wheel: str) -> str:
    header = ("strategy", "players", "rounds", "mean final", "min", "max", "busted",
              "staked", "returned", "RTP", "+-1 sd", "theory")
    rows = [header]
    theory = float(theoretical_rtp(wheel))
    for name, players in results.items():
        finals = [p.final for p in players]
        staked = sum(p.staked for p in players)
        returned = sum(p.returned for p in players)
        squares = sum(p.squares for p in players)
        rows.append((
            name, str(len(players)), str(sum(p.rounds for p in players)),
            f"{sum(finals) / len(finals):.1f}", str(min(finals)), str(max(finals)),
            str(sum(p.busted for p in players)), str(staked), str(returned),
            f"{returned / staked:.4f}" if staked else "-",
            f"{rtp_standard_error(staked, squares, wheel):.4f}" if staked else "-",
            f"{theory:.4f}",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        for row in rows
    )
