"""The RNG battery (scripts/rng_check.py): its short run passes on the real derivation, and each test can fail.

The long run (10^6 spins per wheel) is in ``make bench``; figures in docs/BENCHMARKS.md.
"""

import random
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import rng_check


def test_the_short_run_passes_on_the_derivation():
    """A fixed seed makes the run deterministic: it cannot pass or fail by chance."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "rng_check.py"), "--spins", "20000", "--seed", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    verdicts = [line.split()[-1] for line in run.stdout.splitlines() if line.startswith("  ")]
    assert verdicts == ["pass"] * 8 and "all tests pass at 99%" in run.stdout


@pytest.mark.parametrize("n", [37, 38])
def test_a_loaded_wheel_fails_the_uniformity_test(n):
    rng = random.Random(1)
    loaded = [0 if rng.random() < 0.05 else rng.randrange(n) for _ in range(20000)]
    outcomes = {o.name: o for o in rng_check.battery(loaded, n)}
    assert not outcomes["chi-square"].passed


@pytest.mark.parametrize("n", [37, 38])
def test_a_wheel_that_steps_round_fails_the_order_tests_but_not_uniformity(n):
    stepping = [i % n for i in range(20000)]
    outcomes = {o.name: o for o in rng_check.battery(stepping, n)}
    assert outcomes["chi-square"].passed  # every pocket equally often...
    assert not outcomes["runs"].passed  # ...but in long runs,
    assert not outcomes["serial correlation"].passed  # each next to the one before,
    assert not outcomes["pocket pairs (lag 1)"].passed  # in a few pairs only


def test_a_wheel_that_alternates_halves_fails_the_runs_test():
    rng = random.Random(3)
    alternating = [rng.randrange(19) + (19 if i % 2 else 0) for i in range(20000)]
    assert not {o.name: o for o in rng_check.battery(alternating, 38)}["runs"].passed


def test_too_few_spins_is_a_command_line_mistake():
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "rng_check.py"), "--spins", "10"], capture_output=True, text=True
    )
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "at least 100" in run.stderr
