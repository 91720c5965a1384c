"""Every statistic the report prints, checked against numbers worked out here by the formula.

The expected values never come from scipy or statsmodels: Wilson's formula, the t distribution's
closed forms for 1 and 2 degrees of freedom, binomial sums for McNemar, Holm's steps by hand.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from study import stats

Z = 1.959963984540054  # standard normal 97.5% quantile


def _t_quantile_df1(confidence=0.95):
    return math.tan(math.pi / 2 * confidence)  # Cauchy: t(1)


def _t_two_sided_p(t: float, df: int) -> float:
    if df == 1:
        return 1 - 2 / math.pi * math.atan(abs(t))
    if df == 2:
        return 1 - abs(t) / math.sqrt(t * t + 2)
    raise ValueError(df)


# t(2) has CDF 1/2 + t / (2 sqrt(t^2 + 2)): its 97.5% quantile solves t / sqrt(t^2 + 2) = 0.95.
T_975_DF2 = 0.95 * math.sqrt(2 / (1 - 0.95**2))


def test_wilson_interval_by_the_formula():
    for k, n in ((70, 100), (3, 20), (0, 10), (10, 10)):
        p = k / n
        centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
        half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
        low, high = stats.wilson_interval(k, n)
        assert low == pytest.approx(centre - half, abs=1e-9) and high == pytest.approx(centre + half, abs=1e-9)
    assert stats.wilson_interval(70, 100) == pytest.approx((0.6041, 0.7811), abs=1e-4)  # Newcombe (1998), 0.7


def test_mean_interval_uses_student_t_with_k_minus_1_degrees_of_freedom():
    low, high = stats.mean_interval([0.70, 0.72, 0.71])
    assert (low + high) / 2 == pytest.approx(0.71)
    assert (high - low) / 2 == pytest.approx(T_975_DF2 * 0.01 / math.sqrt(3), rel=1e-9)
    low, high = stats.mean_interval([0.70, 0.72])
    assert (high - low) / 2 == pytest.approx(_t_quantile_df1() * math.sqrt(2) * 0.01 / math.sqrt(2), rel=1e-9)
    assert all(math.isnan(v) for v in stats.mean_interval([0.7]))
    assert stats.mean_interval([0.7, 0.7, 0.7]) == (0.7, 0.7)


def _correct(both: int, only_base: int, only_other: int, neither: int):
    base = [True] * both + [True] * only_base + [False] * only_other + [False] * neither
    other = [True] * both + [False] * only_base + [True] * only_other + [False] * neither
    return np.array(base), np.array(other)


def test_mcnemar_exact_is_two_sided_binomial():
    base, other = _correct(70, 5, 15, 10)
    # Two-sided exact: twice the lower tail of Binomial(20, 1/2) at 5.
    expected = 2 * sum(math.comb(20, k) for k in range(6)) / 2**20
    assert expected == pytest.approx(0.0413895, abs=1e-7)
    assert stats.mcnemar_p(base, other) == pytest.approx(expected, rel=1e-12)
    assert stats.mcnemar_p(other, base) == pytest.approx(expected, rel=1e-12)  # symmetric
    assert stats.mcnemar_p(*_correct(50, 0, 0, 50)) == 1.0  # no discordant pair
    assert stats.mcnemar_p(*_correct(50, 3, 3, 44)) == pytest.approx(1.0)


def test_one_seed_compares_per_image_with_a_wald_interval():
    base, other = _correct(70, 5, 15, 10)
    c = stats.compare_paired_images(base, other)
    n, d = 100, (15 - 5) / 100
    # Per-image differences: 15 of +1, 5 of -1, 80 of 0; the t interval of their mean.
    sd = math.sqrt((15 * (1 - d) ** 2 + 5 * (-1 - d) ** 2 + 80 * d**2) / (n - 1))
    assert c.test == "McNemar" and c.diff == pytest.approx(0.10) and c.better == 1 and c.pairs == 1
    assert c.p_value == pytest.approx(2 * sum(math.comb(20, k) for k in range(6)) / 2**20)
    half = (c.ci_high - c.ci_low) / 2
    assert half == pytest.approx(1.9842169515 * sd / math.sqrt(n), rel=1e-6)  # t(0.975, 99)


def test_paired_t_over_three_seeds():
    base = {1: 0.70, 2: 0.70, 3: 0.69}
    other = {1: 0.71, 2: 0.72, 3: 0.70}  # differences 0.01, 0.02, 0.01
    c = stats.compare_paired_seeds(base, other)
    mean, sd = 0.04 / 3, math.sqrt(((0.01 - 0.04 / 3) ** 2 * 2 + (0.02 - 0.04 / 3) ** 2) / 2)
    t = mean / (sd / math.sqrt(3))
    assert t == pytest.approx(4.0)
    assert c.test == "paired t" and c.diff == pytest.approx(mean) and c.better == 3 and c.pairs == 3
    assert c.p_value == pytest.approx(_t_two_sided_p(t, 2), rel=1e-9)  # 0.0572: two-sided, df 2
    assert c.ci_low == pytest.approx(mean - T_975_DF2 * sd / math.sqrt(3), rel=1e-9)
    assert c.ci_high == pytest.approx(mean + T_975_DF2 * sd / math.sqrt(3), rel=1e-9)


def test_paired_t_over_two_seeds_and_better_in_k_of_k():
    c = stats.compare_paired_seeds({1: 0.60, 2: 0.62}, {1: 0.61, 2: 0.65})  # differences 0.01, 0.03
    assert c.diff == pytest.approx(0.02) and c.better == 2
    se = math.sqrt(2) * 0.01 / math.sqrt(2)
    assert c.p_value == pytest.approx(_t_two_sided_p(0.02 / se, 1), rel=1e-9)  # 0.295 with df 1
    assert c.ci_high - c.diff == pytest.approx(_t_quantile_df1() * se, rel=1e-9)
    c = stats.compare_paired_seeds({1: 0.60, 2: 0.62, 3: 0.60}, {1: 0.61, 2: 0.64, 3: 0.595})
    assert c.better == 2 and c.pairs == 3
    c = stats.compare_paired_seeds({1: 0.60, 2: 0.62, 3: 0.60}, {1: 0.61, 2: 0.62, 3: 0.595})
    assert c.better == 1  # a tie is not "better"
    # Pairs by seed, not by position: a seed missing on one side is left out.
    c = stats.compare_paired_seeds({1: 0.60, 2: 0.62, 3: 0.1}, {2: 0.65, 1: 0.61, 4: 0.9})
    assert c.pairs == 2 and c.diff == pytest.approx(0.02)
    with pytest.raises(ValueError):
        stats.compare_paired_seeds({1: 0.6}, {1: 0.7})


def test_holm_by_hand():
    comparisons = {name: stats.Comparison("paired t", 0.01, 0, 0.02, p, 2, 3)
                   for name, p in (("a", 0.01), ("b", 0.04), ("c", 0.03))}
    comparisons["same"] = stats.same_configuration()
    adjusted = stats.holm(comparisons)
    # Sorted p 0.01, 0.03, 0.04 times 3, 2, 1: 0.03, 0.06, 0.04 -> made monotone: 0.03, 0.06, 0.06.
    assert adjusted["a"].p_holm == pytest.approx(0.03)
    assert adjusted["c"].p_holm == pytest.approx(0.06)
    assert adjusted["b"].p_holm == pytest.approx(0.06)
    assert adjusted["same"].p_holm == 1.0  # not a comparison: not in the family
    assert stats.verdict(adjusted["a"]) == "better" and stats.verdict(adjusted["b"]) == "noise"
    assert stats.verdict(stats.holm({"x": stats.Comparison("paired t", -0.02, -0.03, -0.01, 0.001, 0, 3)})["x"]) \
        == "worse"


def test_recommendation_is_picked_by_validation_and_ties_go_to_the_baseline():
    assert stats.recommend({"baseline": 0.70, "a": 0.72, "b": 0.71}) == "a"
    assert stats.recommend({"a": 0.72, "baseline": 0.72}) == "baseline"
    assert stats.recommend({"baseline": 0.73, "a": 0.72}) == "baseline"


def _run(seed, acc, val, hp, n=20):
    y_test = np.arange(n) % 10
    right = round(acc * n)
    y_pred = np.where(np.arange(n) < right, y_test, (y_test + 1) % 10)
    history = {"accuracy": [0.5], "val_accuracy": [0.1, val], "loss": [1.0], "val_loss": [1.0]}
    return SimpleNamespace(seed=seed, test_accuracy=acc, test_loss=1.0, y_pred=y_pred, history=history,
                           hyperparameters=hp, seconds=1.0)


def test_analyse_picks_by_validation_and_compares_in_pairs():
    y_test = np.arange(20) % 10
    runs = {
        "baseline": [_run(s, a, 0.60, {"o": "adam"}) for s, a in ((1, 0.50), (2, 0.55), (3, 0.60))],
        "sgd": [_run(s, a, 0.40, {"o": "sgd"}) for s, a in ((1, 0.30), (2, 0.40), (3, 0.35))],
        "rmsprop": [_run(s, a, 0.65, {"o": "rmsprop"}) for s, a in ((1, 0.55), (2, 0.60), (3, 0.70))],
        "grid best": [_run(s, a, 0.60, {"o": "adam"}) for s, a in ((1, 0.50), (2, 0.55), (3, 0.60))],
        # The highest test accuracy, but not the highest validation accuracy: never recommended.
        "lucky": [_run(s, 0.9, 0.64, {"o": "lucky"}) for s in (1, 2, 3)],
    }
    a = stats.analyse(runs, y_test)
    assert a.recommended == "rmsprop"
    rms, sgd = a.comparisons["rmsprop"], a.comparisons["sgd"]
    # rmsprop - baseline: 0.05, 0.05, 0.10 (t = 4); sgd - baseline: -0.20, -0.15, -0.25 (t = -4 * sqrt 3).
    p_rms, p_sgd = _t_two_sided_p(4.0, 2), _t_two_sided_p(-4 * math.sqrt(3), 2)
    assert rms.diff == pytest.approx(0.2 / 3) and rms.p_value == pytest.approx(p_rms, rel=1e-6)
    assert sgd.diff == pytest.approx(-0.2) and sgd.p_value == pytest.approx(p_sgd, rel=1e-6)
    assert a.comparisons["grid best"].test == "same configuration"
    # lucky - baseline: 0.40, 0.35, 0.30. Holm over the three real comparisons: smallest p times 3, then 2, then 1.
    p_lucky = _t_two_sided_p(0.35 / (0.05 / math.sqrt(3)), 2)
    assert p_lucky < p_sgd < p_rms
    assert a.comparisons["lucky"].p_holm == pytest.approx(3 * p_lucky, rel=1e-6)
    assert sgd.p_holm == pytest.approx(2 * p_sgd, rel=1e-6) and rms.p_holm == pytest.approx(p_rms, rel=1e-6)
    assert stats.verdict(sgd) == "worse" and stats.verdict(rms) == "noise"
    assert a.arms["baseline"]["test_accuracy"] == pytest.approx(0.55)
    assert a.arms["baseline"]["ci_high"] - 0.55 == pytest.approx(T_975_DF2 * 0.05 / math.sqrt(3), rel=1e-9)
    assert a.arms["rmsprop"]["final_val_accuracy"] == pytest.approx(0.65)
