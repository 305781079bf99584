#!/usr/bin/env python3
"""The RNG test battery: is the provably fair derivation indistinguishable from a fair wheel?

    python3 scripts/rng_check.py --spins 1000000 [--seed N] [--wheel american|european|both]

Spins come from the real derivation (``lineproto.domain.fair``): one server seed,
the client seed ``rng-check`` and nonces 0, 1, 2, ... Four tests per wheel, each
printed with its statistic, its p-value and pass/fail at 99% confidence (a
p-value below 0.01 fails):

- chi-square uniformity: the count of each pocket against N/n;
- runs (Wald-Wolfowitz): runs of indices above and below the middle of the wheel
  (on a 37-pocket wheel the middle index 18 is left out of this test);
- serial correlation: Pearson's r between each index and the next;
- pocket pairs: chi-square of the n*n frequencies of non-overlapping pairs
  (spin 2k, spin 2k+1), so the pairs are independent under the null hypothesis.

Exit status 0 when every test passes, 1 when one fails, 2 for a mistake on the
command line. Needs SciPy for the distributions: pip install 'lineproto[stats]'.
``make bench`` runs the long version; tests/test_rng_check.py a short one.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lineproto.argtypes import ArgumentParser, positive_int
from lineproto.domain import fair

#: A test passes when its p-value is at least this (99% confidence).
ALPHA = 0.01
WHEELS = {"european": 37, "american": 38}
CLIENT_SEED = "rng-check"


@dataclass(frozen=True)
class Outcome:
    """One test's result."""

    name: str
    statistic: float
    p_value: float

    @property
    def passed(self) -> bool:
        return self.p_value >= ALPHA

    def line(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        return f"  {self.name:<20} statistic {self.statistic:>14.4f}   p {self.p_value:.4f}   {verdict}"


def _stats():
    try:
        from scipy import stats
    except ImportError:
        sys.exit("rng_check: needs SciPy (the stats extra): pip install 'lineproto[stats]'")
    return stats


def chi_square_uniformity(indices: Sequence[int], n: int) -> Outcome:
    counts = [0] * n
    for index in indices:
        counts[index] += 1
    result = _stats().chisquare(counts)
    return Outcome("chi-square", float(result.statistic), float(result.pvalue))


def runs_test(indices: Sequence[int], n: int) -> Outcome:
    """Wald-Wolfowitz runs above and below the middle, with the normal approximation (two-sided)."""
    middle = (n - 1) / 2
    signs = [index > middle for index in indices if index != middle]
    above = sum(signs)
    below = len(signs) - above
    runs = 1 + sum(1 for a, b in itertools.pairwise(signs) if a != b)
    total = above + below
    mean = 2 * above * below / total + 1
    variance = 2 * above * below * (2 * above * below - total) / (total**2 * (total - 1))
    z = (runs - mean) / math.sqrt(variance)
    return Outcome("runs", z, float(2 * _stats().norm.sf(abs(z))))


def serial_correlation(indices: Sequence[int], n: int) -> Outcome:
    result = _stats().pearsonr(indices[:-1], indices[1:])
    return Outcome("serial correlation", float(result.statistic), float(result.pvalue))


def pair_frequencies(indices: Sequence[int], n: int) -> Outcome:
    counts = [0] * (n * n)
    for k in range(0, len(indices) - 1, 2):
        counts[indices[k] * n + indices[k + 1]] += 1
    result = _stats().chisquare(counts)
    return Outcome("pocket pairs (lag 1)", float(result.statistic), float(result.pvalue))


TESTS = (chi_square_uniformity, runs_test, serial_correlation, pair_frequencies)


def battery(indices: Sequence[int], n: int) -> list[Outcome]:
    """Every test on one wheel's spins."""
    return [test(indices, n) for test in TESTS]


def derived_spins(server_seed: str, count: int, n: int) -> list[int]:
    """``count`` indices from the real derivation: the seed, client seed ``rng-check``, nonces 0 .. count-1."""
    return [fair.derive_index(server_seed, fair.private_message(CLIENT_SEED, nonce), n) for nonce in range(count)]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="rng_check.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--spins", type=positive_int, default=100_000, help="spins per wheel (default %(default)s)")
    parser.add_argument("--seed", type=int, help="derive the server seed from this number (default: secrets)")
    parser.add_argument("--wheel", choices=[*WHEELS, "both"], default="both")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.spins < 100:
        build_parser().error("--spins: at least 100 spins are needed for the approximations")
    server_seed = fair.new_server_seed(random.Random(args.seed) if args.seed is not None else None)
    print(f"server seed {server_seed} (hash {fair.seed_hash(server_seed)}), {args.spins} spins per wheel")
    failed = 0
    for wheel, n in WHEELS.items():
        if args.wheel not in (wheel, "both"):
            continue
        started = time.perf_counter()
        indices = derived_spins(server_seed, args.spins, n)
        elapsed = time.perf_counter() - started
        print(f"{wheel} ({n} pockets): derived at {args.spins / elapsed:,.0f} spins/s")
        for outcome in battery(indices, n):
            print(outcome.line())
            failed += not outcome.passed
    print("all tests pass at 99%" if not failed else f"{failed} test(s) FAIL at 99%")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
