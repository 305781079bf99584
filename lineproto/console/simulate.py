"""``client.py simulate``: betting strategies on RED, played by simulated players on the daemon.

Guests (the default): each simulated player is its own connection logged in as
``guest``, with its own 100-chip play-money table, so ``--budget`` (what a
strategy may lose) defaults to that bankroll and may not exceed it. The players
play at once: ``--workers N`` processes each drive their share of the connections
(a thread per connection), and the parent process shows the progress and sums up.

``--user NAME``: a registered player has one table on the daemon, shared by all
of that player's connections, and a SPIN settles every bet open on it. So the
simulated players of a registered user play one after another on that table,
over one connection, each with its own budget (the bankroll shared out: all the
budgets together may not exceed it). The run refuses to start while bets are
open on the table, and a spin that settles anything but the player's own bet
(another connection of that user playing meanwhile) stops it with an error rather
than credit someone else's chips to the player. Each player's final bankroll in
the summary is its own budget plus what it won or lost.

On a terminal a progress line on stderr shows the rounds played, the players still
playing and the time; piped, the program says nothing until the summary. Ctrl+C
stops every player after its current round and prints the summary so far (exit
130); a second Ctrl+C abandons the players that have not reported yet.
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TextIO

from ..argtypes import positive_int
from ..client import Client, ClientError, ReplyError, Spin
from ..domain.roulette import AMERICAN, EUROPEAN, house_edge, parse_bet
from ..strategies import STRATEGIES, make_strategy
from ..wire import ProtocolError
from .connect import CONSOLE_RETRY, add_address, connect
from .errors import FAILED, INTERRUPTED, OK, ConsoleError, UsageError, reason
from .prompts import ask_password, is_terminal

GUEST = "guest"
BET = "RED"
#: Seconds between looks at the workers (progress line, Ctrl+C, finished workers).
TICK = 0.2
#: Seconds the parent waits for a finished worker's results, and for a worker to exit.
WORKER_GRACE = 5.0


def add_parsers(programs) -> None:
    simulate = programs.add_parser(
        "simulate",
        help="run betting strategies on RED with simulated players, print a summary",
        description="Simulated players bet on RED with a strategy each, then a summary per strategy. "
        "Guests play at once, spread over --workers processes; the players of a registered "
        "--user play one after another on that user's one table. On a terminal a progress "
        "line shows on stderr. Ctrl+C stops after the current round and prints the summary "
        "so far (exit 130).",
    )
    add_address(simulate)
    simulate.add_argument(
        "--strategy",
        action="append",
        metavar="NAME",
        help=f"{' | '.join(STRATEGIES)} (repeat or comma-separate for several; default martingale)",
    )
    simulate.add_argument("--players", type=positive_int, default=10, help="players per strategy (default %(default)s)")
    simulate.add_argument(
        "--rounds", type=positive_int, default=100, help="most rounds per player (default %(default)s)"
    )
    simulate.add_argument(
        "--budget", type=positive_int, help="chips each player may lose (default: the bankroll, shared out with --user)"
    )
    simulate.add_argument("--base", type=positive_int, default=10, help="base stake (default %(default)s)")
    simulate.add_argument("--wheel", choices=(AMERICAN, EUROPEAN), default=AMERICAN, help="default %(default)s")
    simulate.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="processes that drive the guests' connections, to use more than one "
        "core (default %(default)s; 1 with --user)",
    )
    simulate.add_argument("--user", default=GUEST, help="log in as this player (default guest)")
    simulate.add_argument("--password", help="password of --user (asked if missing)")
    simulate.set_defaults(run=run_simulate)


# --------------------------------------------------------------------------
# One simulated player
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Game:
    """Everything a worker process needs to seat and run its players (sent to it pickled)."""

    host: str
    port: int
    timeout: float
    user: str
    password: str | None
    wheel: str
    rounds: int
    base: int
    budget: int
    table_max: int


@dataclass
class PlayerResult:
    """One simulated player: its wallet is the budget plus what it won or lost."""

    strategy: str
    index: int = 0  # position among all players, to report them in order
    rounds: int = 0
    final: int = 0
    busted: bool = False  # stopped before the last round: the budget could not cover the next stake
    staked: int = 0
    returned: int = 0
    squares: int = 0  # sum of stake**2, for the standard error of the return to player
    error: str | None = None


class StopSign:
    """The parent's "stop after this round", read by every player between rounds.

    One byte of shared memory, no lock: the parent only ever raises it, and a player
    that reads it a round late just plays one more round.
    """

    def __init__(self, context):
        self._raised = context.RawValue("b", 0)

    def set(self) -> None:
        self._raised.value = 1

    def is_set(self) -> bool:
        return bool(self._raised.value)


class TableShared(Exception):
    """A spin settled bets other than this player's own: another connection plays at the table."""


def own_return(spin: Spin, stake: int, user: str) -> int:
    """The chips the spin returned on the player's one bet; TableShared if it settled anything else."""
    if len(spin.outcomes) != 1 or spin.outcomes[0].bet != BET or spin.outcomes[0].amount != stake:
        raise TableShared(
            f"another connection of {user} bet or spun at the table, so the spin did not "
            f"settle just this player's {BET} {stake}; its figures would not be its own"
        )
    return spin.outcomes[0].returned


class Tally:
    """A worker's progress, in its two slots of the shared counters the parent reads: rounds, players done."""

    def __init__(self, counters, slot: int):
        self._counters = counters
        self._rounds = 2 * slot
        self._done = 2 * slot + 1
        self._lock = threading.Lock()  # the worker's player threads add to the same slots

    def add_round(self) -> None:
        with self._lock:
            self._counters[self._rounds] += 1

    def player_done(self) -> None:
        with self._lock:
            self._counters[self._done] += 1


def seat(game: Game) -> Client:
    """A connection logged in as the game's user, at the game's wheel."""
    client = connect(game.host, game.port, game.timeout, retry=CONSOLE_RETRY)
    try:
        client.login(game.user, game.password)
        client.table(game.wheel)
    except BaseException:
        client.close()
        raise
    return client


def play_rounds(client: Client, game: Game, result: PlayerResult, stop: StopSign, tally: Tally) -> None:
    """Bet on RED with the player's strategy until the rounds are played, the budget is spent or ``stop``."""
    strategy = make_strategy(result.strategy, game.base, game.table_max)
    wallet = game.budget
    try:
        while result.rounds < game.rounds and not stop.is_set():
            stake = strategy.next_stake(wallet)
            if stake is None:
                result.busted = True
                break
            client.bet(BET, stake)
            returned = own_return(client.spin(), stake, game.user)
            wallet += returned - stake
            result.rounds += 1
            result.staked += stake
            result.returned += returned
            result.squares += stake * stake
            strategy.record(returned > 0)
            tally.add_round()
    except (ClientError, ProtocolError, OSError, TableShared) as exc:
        result.error = reason(exc)
    finally:
        result.final = wallet


# --------------------------------------------------------------------------
# A worker process: its share of the players
# --------------------------------------------------------------------------


def _play_alone(game: Game, result: PlayerResult, stop: StopSign, tally: Tally) -> None:
    """A guest on its own connection (a thread of a worker)."""
    try:
        client = seat(game)
    except (ConsoleError, ClientError, ProtocolError, OSError, ValueError) as exc:
        result.error = reason(exc)
    else:
        with client:
            play_rounds(client, game, result, stop, tally)
    tally.player_done()


def _play_in_turn(game: Game, players: list[PlayerResult], stop: StopSign, tally: Tally) -> list[PlayerResult]:
    """A registered user's players, one after another over one connection; stops at the first error."""
    played: list[PlayerResult] = []
    with seat(game) as client:
        for result in players:
            if stop.is_set():
                break
            play_rounds(client, game, result, stop, tally)
            played.append(result)
            tally.player_done()
            if result.error:  # the connection, or the table, is no good for the next player
                break
    return played


def worker_main(
    game: Game, players: list[PlayerResult], in_turn: bool, stop: StopSign, counters, slot: int, results
) -> None:
    """A worker process: play ``players`` and put ``(slot, results, error)`` on ``results``.

    Ctrl+C reaches every process of the terminal's group: the worker ignores it and
    stops when the parent sets ``stop`` (it arrives with SIGINT blocked, so it cannot be
    hit before this line).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tally = Tally(counters, slot)
    try:
        if in_turn:
            played = _play_in_turn(game, players, stop, tally)
        else:
            threads = [
                threading.Thread(target=_play_alone, args=(game, result, stop, tally), daemon=True)
                for result in players
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            played = players
    except (ConsoleError, ClientError, ProtocolError, OSError, ValueError) as exc:
        results.put((slot, [], reason(exc)))
    else:
        results.put((slot, played, None))


# --------------------------------------------------------------------------
# The parent: start the workers, show progress, collect
# --------------------------------------------------------------------------


class ProgressLine:
    """One line on a terminal, rewritten in place with ``\\r``; nothing at all when not a terminal."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.enabled = is_terminal(stream)
        self._shown = ""

    def show(self, text: str) -> None:
        if self.enabled and text != self._shown:
            self.stream.write("\r" + text + "\x1b[K")
            self.stream.flush()
            self._shown = text

    def clear(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = ""


@dataclass
class Outcome:
    """What came back from the workers."""

    results: list[PlayerResult]
    seconds: float
    interrupted: bool = False
    failures: list[str] = field(default_factory=list)  # workers that died or could not play

    @property
    def rounds(self) -> int:
        return sum(result.rounds for result in self.results)


class Simulation:
    """Runs the players in worker processes and collects their results.

    Ctrl+C is a flag here, not an exception: the first sets ``stop`` (every player
    ends after its current round and reports), the second gives up on the workers
    that have not reported.
    """

    def __init__(self, game: Game, players: list[PlayerResult], workers: int, in_turn: bool):
        self.game = game
        self.players = players
        self.workers = 1 if in_turn else max(1, min(workers, len(players)))
        self.in_turn = in_turn
        self.interrupts = 0

    def _on_interrupt(self, signum, frame) -> None:
        self.interrupts += 1

    def run(self, progress: ProgressLine) -> Outcome:
        context = multiprocessing.get_context("spawn")
        stop = StopSign(context)
        results = context.Queue()
        counters = context.RawArray("q", 2 * self.workers)
        previous = signal.signal(signal.SIGINT, self._on_interrupt)
        start = time.monotonic()
        try:
            # SIGINT stays blocked while the workers start: they inherit the mask and ignore it first thing
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                processes = [
                    context.Process(
                        target=worker_main,
                        name=f"simulate-worker-{slot}",
                        daemon=True,
                        args=(
                            self.game,
                            self.players[slot :: self.workers],
                            self.in_turn,
                            stop,
                            counters,
                            slot,
                            results,
                        ),
                    )
                    for slot in range(self.workers)
                ]
                for process in processes:
                    process.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            outcome = self._collect(processes, stop, results, counters, progress, start)
            for process in processes:
                process.join(WORKER_GRACE)
                if process.is_alive():
                    process.kill()
                    process.join()
        finally:
            signal.signal(signal.SIGINT, previous)
            progress.clear()
        results.close()
        return outcome

    def _collect(self, processes, stop: StopSign, results, counters, progress: ProgressLine, start: float) -> Outcome:
        outcome = Outcome([], 0.0)
        pending = set(range(len(processes)))
        note = ""
        while pending:
            if self.interrupts and not stop.is_set():
                stop.set()
                outcome.interrupted = True
                note = "; stopping after the current round (Ctrl+C again to give up on them)"
            if self.interrupts >= 2:
                for slot in pending:
                    processes[slot].kill()
                outcome.failures.append(f"gave up on {len(pending)} of {len(processes)} workers")
                break
            try:
                self._take(results.get(timeout=TICK), outcome, pending)
            except queue.Empty:
                self._bury(processes, results, outcome, pending)
            done = sum(counters[1::2])
            progress.show(
                f"{sum(counters[0::2])} rounds played, {len(self.players) - done} of "
                f"{len(self.players)} players left, {time.monotonic() - start:.0f} s{note}"
            )
        outcome.seconds = time.monotonic() - start
        outcome.results.sort(key=lambda result: result.index)
        return outcome

    @staticmethod
    def _take(item, outcome: Outcome, pending: set[int]) -> None:
        slot, played, error = item
        outcome.results.extend(played)
        if error:
            outcome.failures.append(f"worker {slot}: {error}")
        pending.discard(slot)

    def _bury(self, processes, results, outcome: Outcome, pending: set[int]) -> None:
        """Workers that exited: their results are in the queue by now, or they never will be."""
        for slot in [slot for slot in pending if processes[slot].exitcode is not None]:
            while slot in pending:
                try:
                    self._take(results.get(timeout=WORKER_GRACE), outcome, pending)
                except queue.Empty:
                    outcome.failures.append(
                        f"worker {slot} exited with status {processes[slot].exitcode} before it reported"
                    )
                    pending.discard(slot)


# --------------------------------------------------------------------------
# The program
# --------------------------------------------------------------------------


def strategy_names(values) -> list[str]:
    names: list[str] = []
    for value in values or ["martingale"]:
        for name in value.split(","):
            key = name.strip().lower().replace("-", "")
            if key not in STRATEGIES:
                raise UsageError(f"unknown strategy {name!r}: choose {', '.join(STRATEGIES)}")
            if key not in names:
                names.append(key)
    return names


def run_simulate(args) -> int:
    names = strategy_names(args.strategy)
    in_turn = args.user != GUEST
    if in_turn and args.workers > 1:
        raise UsageError(
            f"--workers {args.workers}: the players of a registered user play one after "
            "another on the user's one table, so there is nothing to share out"
        )
    password = None
    if in_turn:
        password = args.password if args.password is not None else ask_password(f"Password for {args.user}: ")
        if password is None:
            raise ConsoleError("no password given")
    total_players = args.players * len(names)
    probe_game = Game(args.host, args.port, args.timeout, args.user, password, args.wheel, args.rounds, args.base, 0, 0)
    try:
        with seat(probe_game) as probe:
            info = probe.table()
            table = probe.bets()
    except (ReplyError, ValueError) as exc:
        raise ConsoleError(f"cannot play as {args.user}: {reason(exc)}") from None
    if table.staked:
        raise ConsoleError(
            f"{args.user} has {table.staked} chips on open bets at the table: spin or clear "
            f"them first (client.py play --user {args.user})"
        )
    available = table.bankroll // total_players if in_turn else table.bankroll
    budget = args.budget if args.budget is not None else available
    if budget > available or budget < 1:
        who = (
            f"{total_players} players sharing {args.user}'s {table.bankroll} chips"
            if in_turn
            else f"a guest, who has {table.bankroll} chips"
        )
        raise UsageError(
            f"a budget of {budget} is more than {available}, the most for {who}; "
            f"lower --budget{'' if in_turn else ', or play as a registered player with --user'}"
        )
    if not info.minimum <= args.base <= min(info.maximum, budget):
        raise UsageError(
            f"the base stake must be within the table limits {info.minimum}-{info.maximum} and the budget {budget}"
        )

    game = Game(
        args.host,
        args.port,
        args.timeout,
        args.user,
        password,
        args.wheel,
        args.rounds,
        args.base,
        budget,
        info.maximum,
    )
    players = [
        PlayerResult(name, index, final=budget)
        for index, name in enumerate(name for name in names for _ in range(args.players))
    ]
    simulation = Simulation(game, players, args.workers, in_turn)
    outcome = simulation.run(ProgressLine(sys.stderr))

    print(
        f"Roulette simulation: {args.players} players per strategy, up to {args.rounds} rounds, "
        f"budget {budget}, base {args.base}, RED on the {args.wheel} wheel (as {args.user})"
        + (f"; they play one after another at {args.user}'s table" if in_turn else "")
    )
    by_strategy = {name: [r for r in outcome.results if r.strategy == name] for name in names}
    print(summary_table(by_strategy, args.wheel))
    rate = outcome.rounds / outcome.seconds if outcome.seconds else 0.0
    workers = f"{simulation.workers} worker process" + ("es" if simulation.workers > 1 else "")
    print(f"{outcome.rounds} rounds in {outcome.seconds:.1f} s ({rate:.0f} rounds/s), {workers}", flush=True)
    return _report_problems(args.parser.prog, outcome, total_players)


def _report_problems(prog: str, outcome: Outcome, total_players: int) -> int:
    """One stderr line per kind of trouble; the exit status."""
    errors = [result.error for result in outcome.results if result.error]
    missing = total_players - len(outcome.results)
    if errors:
        print(f"{prog}: {len(errors)} players stopped on an error, first: {errors[0]}", file=sys.stderr)
    for failure in outcome.failures:
        print(f"{prog}: {failure}", file=sys.stderr)
    if outcome.interrupted:
        print(
            f"{prog}: interrupted: the summary covers the {outcome.rounds} rounds played so far"
            + (f"; {missing} players did not play" if missing else ""),
            file=sys.stderr,
        )
        return INTERRUPTED
    if missing and not outcome.failures:
        print(f"{prog}: {missing} players did not play after the error", file=sys.stderr)
    return FAILED if errors or outcome.failures or missing else OK


# --------------------------------------------------------------------------
# The summary
# --------------------------------------------------------------------------


def theoretical_rtp(wheel: str) -> Fraction:
    """Return to player of a RED bet: 1 - house edge (36/38 American, 36/37 European)."""
    return 1 - house_edge(parse_bet(BET, wheel), wheel)


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
    """One row per strategy that has players (an interrupted run may leave one without)."""
    header = (
        "strategy",
        "players",
        "rounds",
        "mean final",
        "min",
        "max",
        "busted",
        "staked",
        "returned",
        "RTP",
        "+-1 sd",
        "theory",
    )
    rows = [header]
    theory = float(theoretical_rtp(wheel))
    for name, players in results.items():
        if not players:
            continue
        finals = [p.final for p in players]
        staked = sum(p.staked for p in players)
        returned = sum(p.returned for p in players)
        squares = sum(p.squares for p in players)
        rows.append(
            (
                name,
                str(len(players)),
                str(sum(p.rounds for p in players)),
                f"{sum(finals) / len(finals):.1f}",
                str(min(finals)),
                str(max(finals)),
                str(sum(p.busted for p in players)),
                str(staked),
                str(returned),
                f"{returned / staked:.4f}" if staked else "-",
                f"{rtp_standard_error(staked, squares, wheel):.4f}" if staked else "-",
                f"{theory:.4f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )
