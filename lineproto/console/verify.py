"""``client.py verify``: recompute a player's provably fair spins from their history and say which match.

The daemon commits to each server seed before play by showing its SHA-256
(``FAIR``) and reveals it with ``FAIR NEW``. Every round in ``HIST`` names the
wheel, the nonce, the client seed and the hash of the server seed it came
from. This program logs in, takes the revealed seeds (``--server-seed``, as
many as given, and with ``--reveal`` the one ``FAIR NEW`` reveals now), reads
the history and recomputes the pocket of every round whose seed is revealed
(docs/PROTOCOL.md section 10 gives the derivation):

    round 3, nonce 2: 17 match
    round 2, nonce 1: MISMATCH: the history says 5, the seed gives 17

Exit status: 0 every spin checked matches, 1 a mismatch (or nothing could be
checked, or the daemon refused), 2 a mistake on the command line.
"""

from __future__ import annotations

import argparse

from ..client.roulette import HistoryRound
from ..domain import fair
from ..domain.accounts import GUEST
from ..domain.roulette import MAX_HISTORY, FairSpin
from .connect import add_address, connect
from .errors import FAILED, OK, ConsoleError
from .play import login


def server_seed(text: str) -> str:
    """``--server-seed``: 64 hex characters, as ``FAIR NEW`` shows them."""
    seed = text.strip().lower()
    if not fair.is_server_seed(seed):
        raise argparse.ArgumentTypeError(f"a server seed is 64 hex characters, not {text[:80]!r}")
    return seed


def history_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_HISTORY:
        raise argparse.ArgumentTypeError(f"the count is 1 to {MAX_HISTORY}, not {text[:20]!r}")
    return count


def add_parsers(programs) -> None:
    verify = programs.add_parser(
        "verify",
        help="recompute your provably fair spins from your history",
        description="Log in, read your history (HIST) and recompute the pocket of every round whose server "
        "seed is revealed: the seeds given with --server-seed, and with --reveal the one FAIR NEW reveals "
        "now (it starts a new seed, so it is refused while bets are open). Prints one line per round, "
        "'match' or 'MISMATCH'. Exit 0 every round checked matches, 1 a mismatch or nothing to check.",
    )
    add_address(verify)
    verify.add_argument("--user", default=GUEST, help="log in as this player (asks the password); default guest")
    verify.add_argument(
        "--server-seed",
        type=server_seed,
        action="append",
        default=[],
        metavar="HEX",
        help="a server seed revealed before (FAIR NEW's server-seed line); may be given more than once",
    )
    verify.add_argument("--reveal", action="store_true", help="run FAIR NEW first and check with the seed it reveals")
    verify.add_argument(
        "--count",
        type=history_count,
        default=MAX_HISTORY,
        help=f"how many history entries to read, newest first (default and most {MAX_HISTORY})",
    )
    verify.set_defaults(run=run_verify)


class Verdicts:
    """The rounds checked so far against the revealed seeds, by their hash."""

    def __init__(self, seeds: list[str]):
        self.seeds = {fair.seed_hash(seed): seed for seed in seeds}
        self.matched = self.mismatched = self.unrevealed = self.unseeded = 0

    def check(self, entry: HistoryRound) -> str:
        """One round's line; counts it as matched, mismatched, not revealed or without seeds."""
        if entry.fair is None:
            self.unseeded += 1
            return f"round {entry.round}: spun before provably fair spins, nothing to check"
        seeds = entry.fair
        where = f"round {entry.round}, nonce {seeds.nonce}"
        seed = self.seeds.get(seeds.server_seed_hash)
        if seed is None:
            self.unrevealed += 1
            return f"{where}: server seed {seeds.server_seed_hash[:16]}... not revealed yet"
        spun = FairSpin(seeds.wheel, seeds.nonce, seeds.client_seed, seeds.server_seed_hash)
        pocket = spun.recompute(seed)
        if pocket == entry.pocket:
            self.matched += 1
            return f"{where}: {pocket} match"
        self.mismatched += 1
        return f"{where}: MISMATCH: the history says {entry.pocket}, the seed gives {pocket}"

    def summary(self) -> str:
        return f"{self.matched} match, {self.mismatched} mismatch, {self.unrevealed} not revealed yet" + (
            f", {self.unseeded} from before provably fair spins" if self.unseeded else ""
        )


def run_verify(args) -> int:
    seeds = list(args.server_seed)
    with connect(args.host, args.port, args.timeout) as client:
        login(client, args.user)  # as play logs in
        if args.reveal:
            revealed = client.fair_new()
            assert revealed.server_seed is not None  # FAIR NEW always reveals
            print(f"revealed server seed {revealed.server_seed}; the next spins use {revealed.server_seed_hash}")
            seeds.append(revealed.server_seed)
        history = client.history(args.count)
    verdicts = Verdicts(seeds)
    for entry in reversed(history.entries):  # oldest first, as they were spun
        if isinstance(entry, HistoryRound):
            print(verdicts.check(entry))
    print(verdicts.summary())
    if verdicts.mismatched:
        return FAILED
    if not verdicts.matched:
        raise ConsoleError("no spin to check: reveal its server seed (--reveal or --server-seed HEX)")
    return OK
