"""``client.py play``: a roulette table for people, at a prompt.

A guest plays 100 play-money chips on a table that ends with the session. A
registered player's table is kept by the daemon: open bets left on it when the
player leaves stay there for the next visit, and the program says so, as it
says on arrival what is already staked.
"""

from __future__ import annotations

import sys

from ..client import Client, OpenBets, PermanentError, ReplyError
from ..domain.roulette import AMERICAN, EUROPEAN
from .connect import CONSOLE_RETRY, add_address, connect
from .errors import OK, ConsoleError, reason
from .prompts import LineHistory, ask_password, is_terminal

GUEST = "guest"
PROMPT = "roulette> "

_PLAY_HELP = """\
  <bet> <amount>   put chips on a bet: red 10, 17 5, split 17-18 5, dozen2 20, basket 5
  spin             spin the wheel and settle the bets (an empty bet list spins too)
  bets             the bets on the table        clear   take every bet back
  wheel [american|european]   show or change the wheel (not while bets are open)
  help             this list                    quit    leave the table"""


def add_parsers(programs) -> None:
    play = programs.add_parser(
        "play",
        help="interactive roulette table",
        description="Play roulette at a prompt (help lists the commands; quit or end of input leaves). "
        "A guest gets 100 play chips for the session; a registered player's table, open "
        "bets included, is kept for the next visit. On a terminal the lines typed are "
        "kept in $XDG_STATE_HOME/lineproto/play_history.",
    )
    add_address(play)
    play.add_argument(
        "--user", default=GUEST, help="log in as this player (asks the password); default guest, 100 play chips"
    )
    play.add_argument("--wheel", choices=(AMERICAN, EUROPEAN), help="choose the wheel first")
    play.set_defaults(run=run_play)


def holdings(table: OpenBets) -> str:
    """``975 chips in hand, 25 on open bets``, or ``1000 chips`` when nothing is staked."""
    if not table.staked:
        return f"{table.bankroll} chips"
    return f"{table.bankroll} chips in hand, {table.staked} on open bets"


def leaving_words(table: OpenBets, guest: bool) -> str:
    """What the player takes away, and what becomes of chips still on the table."""
    if not table.staked:
        return f"You leave with {table.bankroll} chips."
    if guest:
        return f"You leave with {table.bankroll} chips; the {table.staked} on open bets end with the guest table."
    return (
        f"You leave with {table.bankroll} chips in hand and {table.staked} on open bets, which stay "
        "on your table for your next visit."
    )


def login(client: Client, user: str) -> None:
    """Log in as ``user`` (asking the password unless guest); a ConsoleError if that fails."""
    password = None
    if user != GUEST:
        password = ask_password(f"Password for {user}: ")
        if password is None:
            raise ConsoleError("no password given")
    try:
        client.login(user, password)
    except (ReplyError, ValueError) as exc:  # ValueError: a line that cannot be sent
        raise ConsoleError(f"login failed: {reason(exc)}") from None


def run_play(args) -> int:
    with connect(args.host, args.port, args.timeout, retry=CONSOLE_RETRY) as client:
        login(client, args.user)
        info = client.table(args.wheel)
        print(
            f"Logged in as {args.user}: {holdings(client.bets())}. {info.wheel.capitalize()} wheel, "
            f"bets {info.minimum}-{info.maximum} chips."
        )
        print("Type a bet and an amount (red 10), then spin; help lists the commands, quit leaves.")
        with LineHistory("play_history", args.parser.prog):
            _play_loop(client)
        print(leaving_words(client.bets(), guest=args.user == GUEST))
    return OK


def _play_loop(client: Client) -> None:
    prompt = PROMPT if is_terminal(sys.stdin) else ""
    while True:
        try:
            line = input(prompt)
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
                print(
                    f"  {info.wheel} wheel, pockets {info.pockets}, bets {info.minimum}-{info.maximum} chips, "
                    f"house edge {info.house_edge}"
                )
            else:
                if word == "bet":
                    words = words[1:]
                if len(words) < 2 or not words[-1].isdigit():
                    print("  say a bet and an amount, e.g. red 10 (help lists the commands)")
                    continue
                placed = client.bet(" ".join(words[:-1]), int(words[-1]))
                print(f"  {placed.bet} for {placed.amount} (pays {placed.payout}:1); bankroll {placed.bankroll}")
        except PermanentError as exc:
            print(f"  refused: {reason(exc)}")
        except ValueError as exc:  # a line the client will not send (control characters, not UTF-8)
            print(f"  not sent: {reason(exc)}")


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
