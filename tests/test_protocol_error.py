"""The confirmed protocol's error rate, simulated small: it must stay in the binomial band of its nominal 2.5%."""
from __future__ import annotations

import sys
from pathlib import Path

from scipy.stats import binom

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import protocol_error  # noqa: E402


def test_the_confirmed_protocol_says_beats_the_baseline_at_its_nominal_rate_when_nothing_is_better():
    n = 1000
    share, trained, _ = protocol_error.rate("confirmed", [0.0] * 4, 0.85, n, seed=3)
    low, high = binom.interval(0.999, n, 0.025)  # one-sided 2.5%: a positive difference beyond the noise
    assert low <= round(share * n) <= high, share
    assert trained > 2 * protocol_error.CONFIRM  # the race's runs and the confirmation's pairs


def test_a_truly_better_challenger_is_found_and_the_old_protocol_is_the_one_fooled_by_the_pick():
    power, _, _ = protocol_error.rate("confirmed", [2.0, 0.0, 0.0, 0.0], 0.85, 300, seed=4)
    assert power >= 0.8, power  # +2 points over 0.7 points of noise per seed, 5 fresh seeds
    n = 1000
    fooled, _, _ = protocol_error.rate("before issue 31", [0.0] * 8, 0.85, n, seed=5)
    assert fooled > binom.interval(0.999, n, 0.025)[1] / n, fooled  # the selection carried into its own test
