"""Every statistic the report prints, checked against numbers worked out here by the formula.

The expected values never come from scipy or statsmodels: Wilson's formula, the t distribution's
closed forms for 1 and 2 degrees of freedom, binomial sums for McNemar, Holm's steps by hand.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from study import stats, wording

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
    with pytest.raises(ValueError, match=r"^a paired t-test needs at least 2 shared seeds, got \[1\]$"):
        stats.compare_paired_seeds({1: 0.6}, {1: 0.7})


def test_holm_by_hand():
    comparisons = {name: stats.Comparison("paired t", 0.01, 0, 0.02, p, 2, 3)
                   for name, p in (("a", 0.01), ("b", 0.04), ("c", 0.03))}
    comparisons["same"] = None  # the baseline's own configuration: no comparison
    adjusted = stats.holm(comparisons)
    # Sorted p 0.01, 0.03, 0.04 times 3, 2, 1: 0.03, 0.06, 0.04 -> made monotone: 0.03, 0.06, 0.06.
    assert adjusted["a"].p_holm == pytest.approx(0.03)
    assert adjusted["c"].p_holm == pytest.approx(0.06)
    assert adjusted["b"].p_holm == pytest.approx(0.06)
    assert adjusted["same"] is None  # not a comparison: not in the family
    assert stats.verdict(adjusted["a"]) == "better" and stats.verdict(adjusted["b"]) == "noise"
    assert stats.verdict(stats.holm({"x": stats.Comparison("paired t", -0.02, -0.03, -0.01, 0.001, 0, 3)})["x"]) \
        == "worse"
    # Capped at 1: 0.4 x 3 would be 1.2.
    capped = stats.holm({n: stats.Comparison("paired t", 0.0, 0, 0, p, 0, 3) for n, p in (("x", 0.4), ("y", 0.5),
                                                                                        ("z", 0.6))})
    assert [capped[n].p_holm for n in "xyz"] == [1.0, 1.0, 1.0]
    assert stats.holm({}) == {} and stats.holm({"s": None}) == {"s": None}


def test_verdict_needs_p_below_005_and_reads_the_holm_p_when_there_is_one():
    c = stats.Comparison("paired t", 0.01, 0, 0.02, 0.01, 3, 3)
    assert stats.verdict(c) == "better"  # no Holm p: the p-value itself
    assert stats.verdict(stats.Comparison("paired t", 0.01, 0, 0.02, 0.01, 3, 3, p_holm=0.05)) == "noise"
    assert stats.verdict(stats.Comparison("paired t", 0.01, 0, 0.02, 0.2, 3, 3, p_holm=0.049)) == "better"
    assert stats.verdict(stats.Comparison("paired t", 0.0, 0, 0, 0.01, 0, 3)) == "worse"  # not > 0


def test_the_challenger_is_picked_by_validation_the_first_on_a_tie():
    assert stats.challenger({"a": 0.70, "b": 0.72, "c": 0.71}) == "b"
    assert stats.challenger({"a": 0.72, "b": 0.72}) == "a"
    assert stats.challenger({"c": 0.73, "a": 0.72}) == "c"
    assert stats.challenger({}) is None


def test_the_challenger_beats_the_baseline_only_with_a_positive_difference_below_005_uncorrected():
    def c(diff, p, p_holm=math.nan):
        return stats.Comparison("paired t", diff, 0, 0, p, 3, 5, p_holm)

    assert stats.beats_baseline(c(0.01, 0.049))
    assert stats.beats_baseline(c(0.01, 0.049, p_holm=0.2))  # one comparison fixed in advance: no Holm
    assert not stats.beats_baseline(c(0.01, 0.05))
    assert not stats.beats_baseline(c(-0.01, 0.001))  # beyond the noise, but worse
    assert not stats.beats_baseline(c(0.0, 0.001))
    assert not stats.beats_baseline(None)


def test_identical_differences_over_seeds_are_not_certainty():
    # Every seed 1 point better: no spread, so no t-test; the sign test says what 5 of 5 says, 2 / 2**5.
    base = {s: 0.60 + 0.01 * s for s in range(1, 6)}
    c = stats.compare_paired_seeds(base, {s: a + 0.01 for s, a in base.items()})
    assert c.test == "sign test" and c.diff == pytest.approx(0.01) and c.better == 5 and c.pairs == 5
    assert c.p_value == pytest.approx(2 / 2**5) and stats.verdict(c) == "noise"
    assert math.isnan(c.ci_low) and math.isnan(c.ci_high)
    worse = stats.compare_paired_seeds(base, {s: a - 0.01 for s, a in base.items()})
    assert worse.p_value == pytest.approx(2 / 2**5) and worse.better == 0 and worse.diff == pytest.approx(-0.01)
    three = stats.compare_paired_seeds({1: 0.5, 2: 0.6, 3: 0.7}, {1: 0.52, 2: 0.62, 3: 0.72})
    assert three.p_value == pytest.approx(2 / 2**3)
    same = stats.compare_paired_seeds(base, dict(base))
    assert same.p_value == 1.0 and same.diff == 0 and same.better == 0


def test_paired_t_over_five_seeds():
    """K = 5, the size the report runs: differences 1, 2, 0, 3, -1 points; t(4) has a closed-form CDF."""
    d = [0.01, 0.02, 0.0, 0.03, -0.01]
    base = {s: 0.70 for s in range(1, 6)}
    c = stats.compare_paired_seeds(base, {s: 0.70 + x for s, x in zip(range(1, 6), d)})
    mean = 0.01
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / 4)
    t = mean / (sd / math.sqrt(5))
    cdf = 0.5 + 3 / 8 * (t / math.sqrt(1 + t * t / 4)) * (1 - t * t / (12 * (1 + t * t / 4)))
    assert c.test == "paired t" and c.diff == pytest.approx(mean) and c.better == 3 and c.pairs == 5
    assert c.p_value == pytest.approx(2 * (1 - cdf), rel=1e-9)
    t975_df4 = 2.7764451051977987  # t(0.975, 4), from tables
    assert c.ci_low == pytest.approx(mean - t975_df4 * sd / math.sqrt(5), rel=1e-9)
    assert c.ci_high == pytest.approx(mean + t975_df4 * sd / math.sqrt(5), rel=1e-9)


def test_images_over_seeds_are_paired_per_image_averaged_over_the_seeds():
    # 2 seeds x 4 images; per image, arm minus baseline, averaged over the seeds: 1, 0, 0.5, 0.
    base = [np.array([0, 1, 0, 1], bool), np.array([0, 1, 1, 0], bool)]
    other = [np.array([1, 1, 1, 1], bool), np.array([1, 1, 1, 0], bool)]
    c = stats.compare_images(base, other)
    d = [1.0, 0.0, 0.5, 0.0]
    mean, sd = 0.375, math.sqrt(sum((x - 0.375) ** 2 for x in d) / 3)
    assert c.test == "paired t, images" and c.diff == pytest.approx(mean) and c.pairs == 2 and c.better == 2
    t3 = 3.1824463052837078  # t(0.975, 3), from tables
    assert c.ci_high - c.ci_low == pytest.approx(2 * t3 * sd / 2, rel=1e-9)
    assert c.ci_low + c.ci_high == pytest.approx(2 * mean)
    assert c.p_value > 0.05  # t = 1.57 with 3 df
    alike = stats.compare_images([np.array([1, 0], bool)], [np.array([1, 0], bool)])
    assert (alike.diff, alike.p_value, alike.better) == (0.0, 1.0, 0)
    everywhere = stats.compare_images([np.array([0, 0], bool)], [np.array([1, 1], bool)])
    assert (everywhere.diff, everywhere.ci_low, everywhere.p_value, everywhere.better) == (1.0, 1.0, 0.0, 1)


def _run(seed, acc, val, hp, n=20):
    y_test = np.arange(n) % 10
    right = round(acc * n)
    y_pred = np.where(np.arange(n) < right, y_test, (y_test + 1) % 10)
    history = {"accuracy": [0.5], "val_accuracy": [0.1, val], "loss": [1.0], "val_loss": [1.0]}
    return SimpleNamespace(seed=seed, test_accuracy=float(np.mean(y_pred == y_test)), test_loss=1.0, y_pred=y_pred,
                           history=history, hyperparameters=hp, seconds=1.0)


def test_analyse_picks_by_validation_and_compares_in_pairs():
    y_test = np.arange(20) % 10
    runs = {
        "baseline": [_run(s, a, 0.60, {"o": "adam"}) for s, a in ((1, 0.50), (2, 0.55), (3, 0.60))],
        "sgd": [_run(s, a, 0.40, {"o": "sgd"}) for s, a in ((1, 0.30), (2, 0.40), (3, 0.35))],
        "rmsprop": [_run(s, a, 0.65, {"o": "rmsprop"}) for s, a in ((1, 0.55), (2, 0.60), (3, 0.70))],
        "grid best": [_run(s, a, 0.70, {"o": "adam"}) for s, a in ((1, 0.50), (2, 0.55), (3, 0.60))],
        # The highest test accuracy, but not the highest validation accuracy: never the challenger.
        "lucky": [_run(s, 0.9, 0.64, {"o": "lucky"}) for s in (1, 2, 3)],
    }
    a = stats.analyse(runs, y_test)
    # grid best has the highest validation accuracy, but it is the baseline's configuration: no challenger.
    assert a.challenger == "rmsprop" and not a.beats_baseline and a.recommended == "baseline"
    rms, sgd = a.comparisons["rmsprop"], a.comparisons["sgd"]
    # rmsprop - baseline: 0.05, 0.05, 0.10 (t = 4); sgd - baseline: -0.20, -0.15, -0.25 (t = -4 * sqrt 3).
    p_rms, p_sgd = _t_two_sided_p(4.0, 2), _t_two_sided_p(-4 * math.sqrt(3), 2)
    assert rms.diff == pytest.approx(0.2 / 3) and rms.p_value == pytest.approx(p_rms, rel=1e-6)
    assert sgd.diff == pytest.approx(-0.2) and sgd.p_value == pytest.approx(p_sgd, rel=1e-6)
    assert a.comparisons["grid best"] is None
    # lucky - baseline: 0.40, 0.35, 0.30. Holm over the three real comparisons: smallest p times 3, then 2, then 1.
    p_lucky = _t_two_sided_p(0.35 / (0.05 / math.sqrt(3)), 2)
    assert p_lucky < p_sgd < p_rms
    assert a.comparisons["lucky"].p_holm == pytest.approx(3 * p_lucky, rel=1e-6)
    assert sgd.p_holm == pytest.approx(2 * p_sgd, rel=1e-6) and rms.p_holm == pytest.approx(p_rms, rel=1e-6)
    assert stats.verdict(sgd) == "worse" and stats.verdict(rms) == "noise"
    assert a.arms["baseline"]["test_accuracy"] == pytest.approx(0.55)
    assert a.arms["baseline"]["ci_high"] - 0.55 == pytest.approx(T_975_DF2 * 0.05 / math.sqrt(3), rel=1e-9)
    assert a.arms["rmsprop"]["final_val_accuracy"] == pytest.approx(0.65)
    assert a.arms["rmsprop"]["dropped_after"] is None

    # lucky with the best validation: its gain is beyond the noise (uncorrected p 0.012 < 0.05), it is recommended.
    runs["lucky"] = [_run(s, 0.9, 0.66, {"o": "lucky"}) for s in (1, 2, 3)]
    a = stats.analyse(runs, y_test)
    assert a.challenger == "lucky" and a.beats_baseline and a.recommended == "lucky"
    # Dropped by the race: not a challenger, whatever its validation accuracy.
    a = stats.analyse(runs, y_test, dropped={"lucky": (2, "worse than the leader")})
    assert a.challenger == "rmsprop" and a.arms["lucky"]["dropped_after"] == 2 and a.recommended == "baseline"


def test_two_arms_of_one_configuration_are_one_comparison_in_holms_family():
    y_test = np.arange(20) % 10
    runs = {
        "baseline": [_run(s, a, 0.60, {"o": "adam"}) for s, a in ((1, 0.50), (2, 0.55), (3, 0.60))],
        "sgd": [_run(s, a, 0.40, {"o": "sgd", "lr": 0.01}) for s, a in ((1, 0.30), (2, 0.40), (3, 0.35))],
        "lucky": [_run(s, 0.9, 0.64, {"o": "lucky"}) for s in (1, 2, 3)],
        # A search whose best is the SGD arm's configuration (in another key order): the same runs, not a second test.
        "grid best": [_run(s, a, 0.40, {"lr": 0.01, "o": "sgd"}) for s, a in ((1, 0.30), (2, 0.40), (3, 0.35))],
    }
    a = stats.analyse(runs, y_test)
    p_lucky, p_sgd = _t_two_sided_p(0.35 / (0.05 / math.sqrt(3)), 2), _t_two_sided_p(-4 * math.sqrt(3), 2)
    assert a.comparisons["lucky"].p_holm == pytest.approx(2 * p_lucky, rel=1e-6)  # a family of 2, not 3
    assert a.comparisons["sgd"].p_holm == pytest.approx(p_sgd, rel=1e-6)
    assert a.comparisons["grid best"] == a.comparisons["sgd"] and a.family == 2
    assert "(Holm's correction over the 2 comparisons)" in wording.beyond_noise_text(a)


def test_analyse_with_no_challenger_keeps_the_baseline():
    y_test = np.arange(20) % 10
    runs = {"baseline": [_run(1, 0.5, 0.6, {"o": "adam"})], "grid best": [_run(1, 0.5, 0.6, {"o": "adam"})]}
    a = stats.analyse(runs, y_test)
    assert a.challenger is None and not a.beats_baseline and a.recommended == "baseline"


def test_one_seed_through_compare_runs_is_mcnemar_and_takes_the_arm_minus_the_baseline():
    y_test = np.arange(20) % 10
    base, arm = [_run(1, 0.50, 0.6, {"o": "adam"})], [_run(1, 0.90, 0.6, {"o": "sgd"})]
    c = stats.compare_runs(base, arm, y_test)
    # 8 images right for the arm only, none for the baseline only: p = 2 / 2**8.
    assert c.test == "McNemar" and c.diff == pytest.approx(0.40) and c.better == 1 and c.pairs == 1
    assert c.p_value == pytest.approx(2 / 2**8) and c.ci_low > 0
    swapped = stats.compare_runs(arm, base, y_test)
    assert swapped.diff == pytest.approx(-0.40) and swapped.better == 0 and swapped.p_value == c.p_value
    assert swapped.ci_high == pytest.approx(-c.ci_low) and swapped.ci_low == pytest.approx(-c.ci_high)


def test_compare_runs_pairs_the_seeds_both_ran():
    y_test = np.arange(20) % 10
    base = [_run(s, a, 0.6, {"o": "adam"}) for s, a in ((1, 0.50), (2, 0.55), (3, 0.60), (4, 0.5))]
    dropped = [_run(s, a, 0.4, {"o": "sgd"}) for s, a in ((1, 0.30), (2, 0.40), (3, 0.35))]
    c = stats.compare_runs(base, dropped, y_test)
    assert c.pairs == 3 and c.diff == pytest.approx(-0.2) and c.test == "paired t"
    later = [_run(s, 0.5, 0.4, {"o": "sgd"}) for s in (7, 8)]
    with pytest.raises(ValueError):
        stats.compare_runs(base, later, y_test)


def test_one_test_image_gained_in_each_of_five_seeds_is_noise():
    """Identical per-seed differences: paired per image over the seeds, not p = 0 with a zero-width interval."""
    n = 1000
    y_test = np.arange(n) % 10
    rng = np.random.default_rng(0)
    base, arm = [], []
    for seed in range(1, 6):
        right = rng.random(n) < 0.7
        better = right.copy()
        better[np.flatnonzero(~right)[:30]] = True  # 30 images gained, 29 others lost: a net gain of 1 image
        better[np.flatnonzero(right)[:29]] = False
        for runs, ok, hp in ((base, right, {"o": "adam"}), (arm, better, {"o": "rmsprop"})):
            y_pred = np.where(ok, y_test, (y_test + 1) % 10)
            runs.append(SimpleNamespace(seed=seed, test_accuracy=float(np.mean(ok)), y_pred=y_pred, hyperparameters=hp))
    c = stats.compare_runs(base, arm, y_test)
    assert c.test == "paired t, images" and c.diff == pytest.approx(0.001) and c.better == 5 and c.pairs == 5
    assert c.ci_low < 0 < c.ci_high and c.p_value > 0.5 and stats.verdict(c) == "noise"
    assert not stats.beats_baseline(c)


def test_wilson_at_the_edges_and_at_another_confidence():
    assert all(math.isnan(v) for v in stats.wilson_interval(0, 0))
    z = 1.6448536269514722  # standard normal 95% quantile: a 90% interval
    for k, n, zz, confidence in ((1, 1, Z, 0.95), (7, 10, z, 0.90)):
        p = k / n
        centre = (p + zz * zz / (2 * n)) / (1 + zz * zz / n)
        half = zz * math.sqrt(p * (1 - p) / n + zz * zz / (4 * n * n)) / (1 + zz * zz / n)
        assert stats.wilson_interval(k, n, confidence) == pytest.approx((centre - half, centre + half), abs=1e-9)


def test_summaries_hold_every_number_by_name():
    one = stats.summarize([0.7], 100)
    assert one.keys() == {"test_accuracy", "test_accuracy_std", "ci_low", "ci_high", "interval"}
    assert one["test_accuracy"] == 0.7 and math.isnan(one["test_accuracy_std"]) and one["interval"] == "Wilson"
    assert (one["ci_low"], one["ci_high"]) == stats.wilson_interval(70, 100)
    several = stats.summarize([0.70, 0.72, 0.71], 100)
    assert several.keys() == one.keys() and several["interval"] == "t"
    assert several["test_accuracy"] == pytest.approx(0.71) and several["test_accuracy_std"] == pytest.approx(0.01)
    assert (several["ci_low"], several["ci_high"]) == stats.mean_interval([0.70, 0.72, 0.71])
    runs = [SimpleNamespace(seed=s, test_accuracy=a, test_loss=loss, seconds=sec,
                            history={"accuracy": [0.3, 0.5, tr], "val_accuracy": val})
            for s, a, loss, sec, tr, val in ((3, 0.6, 1.0, 10.0, 0.8, [0.4, 0.7, 0.6]),
                                             (4, 0.7, 2.0, 20.0, 0.9, [0.5, 0.6, 0.65]))]
    summary = stats.summarize_runs(runs, 10)
    expected = {"test_loss": 1.5, "final_train_accuracy": 0.85, "final_val_accuracy": 0.625,
                "best_val_accuracy": 0.675, "best_epoch": 2.5, "seconds": 15.0, "seeds": [3, 4],
                "test_accuracies": [0.6, 0.7], "val_accuracies": [0.6, 0.65]}
    assert summary.keys() == expected.keys() | one.keys()
    lists = ("seeds", "test_accuracies", "val_accuracies")
    assert {k: summary[k] for k in expected if k not in lists} == pytest.approx(
        {k: v for k, v in expected.items() if k not in lists})
    for k in lists:  # pytest.approx takes no list inside a dict (pytest 9.2)
        assert summary[k] == pytest.approx(expected[k]), k


def test_the_same_configuration_in_another_key_order_is_no_comparison_and_no_shared_seed_is_an_error():
    y_test = np.arange(20) % 10
    for first, second in (({"a": 1, "b": 2}, {"b": 2, "a": 1}), ({"b": 2, "a": 1}, {"a": 1, "b": 2})):
        base = [_run(1, 0.5, 0.6, first), _run(2, 0.6, 0.6, first)]
        assert stats.compare_runs(base, [_run(1, 0.5, 0.6, second), _run(2, 0.9, 0.6, second)], y_test) is None
    with pytest.raises(ValueError, match="^no seed run by both the baseline and the arm$"):
        stats.compare_runs(base, [_run(5, 0.5, 0.6, {"a": 2})], y_test)


def test_the_baseline_can_have_another_name():
    y_test = np.arange(20) % 10
    runs = {"adam": [_run(s, a, 0.6, {"o": "adam"}) for s, a in ((1, 0.5), (2, 0.55), (3, 0.6))],
            "rms": [_run(s, a + 0.3, 0.7, {"o": "rms"}) for s, a in ((1, 0.5), (2, 0.6), (3, 0.6))]}
    a = stats.analyse(runs, y_test, baseline="adam")
    assert a.baseline == "adam" and list(a.comparisons) == ["rms"] and a.recommended == "rms" and a.beats_baseline
    assert stats.analyse({"adam": runs["adam"]}, y_test, baseline="adam").recommended == "adam"


def test_every_image_alike_over_the_seeds_is_one_exact_comparison():
    c = stats.compare_images([np.array([0, 1], bool)] * 3, [np.array([1, 1], bool), np.array([1, 0], bool),
                                                            np.array([1, 1], bool)])
    # Per image over the 3 seeds: +1 for the first, -1/3 for the second: not alike, a t-test.
    assert c.test == "paired t, images" and c.pairs == 3
    alike = stats.compare_images([np.array([0, 0], bool)] * 2, [np.array([1, 1], bool)] * 2)
    assert alike == stats.Comparison("paired t, images", 1.0, 1.0, 1.0, 0.0, 2, 2)


def _blocked_by_hand(val, leader):
    """The two-way (arm x seed) model's contrasts from its textbook formulas, not from a regression."""
    from scipy.stats import t as student

    names, seeds = list(val), sorted(next(iter(val.values())))
    y = np.array([[val[n][s] for s in seeds] for n in names])
    a, k = y.shape
    resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + y.mean()
    df = (a - 1) * (k - 1)
    se = math.sqrt((resid ** 2).sum() / df * 2 / k)
    out = {}
    for i, n in enumerate(names):
        if n != leader:
            d = y[i].mean() - y[names.index(leader)].mean()
            half = student.ppf(0.975, df) * se
            out[n] = (d, d - half, d + half, 2 * student.sf(abs(d) / se, df))
    return out


def test_compare_to_leader_is_the_two_way_model_by_hand_over_five_seeds():
    rng = np.random.default_rng(3)
    val = {n: {s: 0.70 + shift + 0.01 * rng.standard_normal() for s in range(1, 6)}
           for n, shift in (("baseline", 0.0), ("a", -0.02), ("b", 0.005), ("c", -0.01))}
    leader, compared = stats.compare_to_leader(val)
    assert leader == "b" and set(compared) == {"baseline", "a", "c"}
    for name, (d, low, high, p) in _blocked_by_hand(val, "b").items():
        c = compared[name]
        assert (c.test, c.pairs) == ("pooled t", 5)
        assert (c.diff, c.ci_low, c.ci_high, c.p_value) == pytest.approx((d, low, high, p), rel=1e-9)
        assert c.better == sum(val[name][s] > val["b"][s] for s in range(1, 6))
    assert compared["a"].p_value < 0.05 < compared["baseline"].p_value


def test_compare_to_leader_with_two_arms_is_the_paired_t_test():
    base = {1: 0.70, 2: 0.71, 3: 0.69}
    arm = {1: 0.72, 2: 0.75, 3: 0.72}
    leader, compared = stats.compare_to_leader({"baseline": base, "arm": arm})
    paired = stats.compare_paired_seeds(arm, base)  # baseline minus arm: the leader is the arm
    assert leader == "arm"
    c = compared["baseline"]
    assert (c.diff, c.ci_low, c.ci_high, c.p_value) == pytest.approx(
        (paired.diff, paired.ci_low, paired.ci_high, paired.p_value), rel=1e-9)
    assert (c.better, c.pairs) == (0, 3)


def test_compare_to_leader_pools_the_noise_two_seeds_of_many_arms_decide():
    # Each arm's own paired t-test on 2 seeds has 1 degree of freedom; pooled over 6 arms, 5.
    val = {"baseline": {1: 0.700, 2: 0.705}, "w": {1: 0.660, 2: 0.671},
           **{f"n{i}": {1: 0.700 + 0.002 * i, 2: 0.705 + 0.002 * i - 0.004 * (i % 2)} for i in range(4)}}
    leader, compared = stats.compare_to_leader(val)
    assert compared["w"].p_value < 0.001 and stats.compare_paired_seeds(val[leader], val["w"]).p_value > 0.02
    assert compared["w"].p_value == pytest.approx(_blocked_by_hand(val, leader)["w"][3], rel=1e-9)


def test_compare_to_leader_takes_the_first_on_a_tie_and_no_spread_decides_nothing():
    val = {"baseline": {1: 0.70, 2: 0.72}, "a": {1: 0.70, 2: 0.72}, "b": {1: 0.65, 2: 0.67}}
    leader, compared = stats.compare_to_leader(val)
    assert leader == "baseline" and compared["a"].better == 0  # equal is not better
    b = compared["b"]  # 5 points worse in both seeds, as every arm a constant shift: no noise to measure
    assert b.diff == pytest.approx(-0.05) and b.p_value == 1.0 and math.isnan(b.ci_low) and math.isnan(b.ci_high)
    assert stats.verdict(b) == "noise"


def test_compare_to_leader_needs_two_arms_and_two_shared_seeds():
    with pytest.raises(ValueError, match="2 shared seeds"):
        stats.compare_to_leader({"baseline": {1: 0.7}, "a": {1: 0.6}})
    with pytest.raises(ValueError, match="2 arms"):
        stats.compare_to_leader({"baseline": {1: 0.7, 2: 0.71}})
    # Only the seeds every arm ran count.
    leader, compared = stats.compare_to_leader({"baseline": {1: 0.70, 2: 0.71, 3: 0.1}, "a": {1: 0.60, 2: 0.62}})
    assert leader == "baseline" and compared["a"].pairs == 2 and compared["a"].diff == pytest.approx(-0.095)


def test_compare_to_leader_spread_below_one_in_a_billion_is_none_above_it_counts():
    base, worse = {1: 0.70, 2: 0.72, 3: 0.71}, {1: 0.65, 2: 0.67, 3: 0.66}
    for jitter, flat in ((1e-11, True), (1e-6, False)):
        _, compared = stats.compare_to_leader({"baseline": base, "w": {1: 0.65 + jitter, 2: 0.67, 3: 0.66}})
        assert (compared["w"].p_value == 1.0) is flat and math.isnan(compared["w"].ci_low) is flat
        if not flat:  # a real, if tiny, spread: 5 points worse is far beyond it
            assert compared["w"].p_value < 1e-6
    assert stats.compare_to_leader({"baseline": base, "w": worse})[1]["w"].p_value == 1.0


def test_with_every_challenger_dropped_nothing_is_left_to_confirm_and_the_baseline_stays():
    y_test = np.arange(20) % 10
    base = [_run(s, a, 0.60, {"o": "adam"}) for s, a in ((1, 0.50), (2, 0.55), (3, 0.60), (4, 0.55))]
    runs = {
        "baseline": base,
        # Kept 3 seeds, and beyond the noise on test (+0.35, +0.30, +0.25): the race had already dropped it.
        "late": [_run(s, a, 0.62, {"o": "late"}) for s, a in ((1, 0.85), (2, 0.85), (3, 0.85))],
        "later": [_run(s, a, 0.61, {"o": "later"}) for s, a in ((1, 0.50), (2, 0.55), (3, 0.60))],
        "early": [_run(s, 0.5, 0.70, {"o": "early"}) for s in (1, 2)],  # the best validation, after 2 seeds only
        "same": [_run(s, a, 0.90, {"o": "adam"}) for s, a in ((1, 0.50), (2, 0.55), (3, 0.60), (4, 0.55))],
    }
    why = "cannot beat the baseline"
    a = stats.analyse(runs, y_test, dropped={"late": (3, why), "later": (3, why), "early": (2, why)})
    assert a.challenger is None and stats.beats_baseline(a.comparisons["late"])
    assert not a.beats_baseline and a.recommended == "baseline" and a.confirmation is None and not a.exploratory
    assert a.arms["late"]["dropped_after"] == 3 and a.arms["late"]["dropped_because"] == why
    assert a.arms["baseline"]["dropped_after"] is None and a.arms["baseline"]["dropped_because"] is None
    # One challenger not dropped: it is the challenger, whatever the dropped ones' validation accuracy.
    a = stats.analyse(runs, y_test, dropped={"late": (3, why), "early": (2, why)})
    assert a.challenger == "later" and not a.beats_baseline and a.exploratory


def _confirming(seeds_and_accuracies, hp):
    return [_run(s, acc, 0.5, hp) for s, acc in seeds_and_accuracies]


def test_the_confirmation_alone_decides_whatever_the_race_said():
    y_test = np.arange(20) % 10
    runs = {
        "baseline": [_run(s, a, 0.60, {"o": "adam"}) for s, a in ((1, 0.50), (2, 0.55), (3, 0.60))],
        # The race's runs say "far better" (+0.40, +0.35, +0.30: uncorrected p 0.012).
        "lucky": [_run(s, 0.9, 0.66, {"o": "lucky"}) for s in (1, 2, 3)],
    }
    assert stats.analyse(runs, y_test).beats_baseline  # exploratory: the race's own runs would decide
    # Fresh seeds 4-6, given out of order: +0.05, -0.05, 0.00. No gain: keep the baseline.
    base = _confirming(((6, 0.50), (4, 0.55), (5, 0.60)), {"o": "adam"})
    level = _confirming(((5, 0.55), (6, 0.50), (4, 0.60)), {"o": "lucky"})
    a = stats.analyse(runs, y_test, confirmation=(base, level))
    assert a.challenger == "lucky" and not a.beats_baseline and a.recommended == "baseline" and not a.exploratory
    c = a.confirmation
    assert c.seeds == (4, 5, 6) and c.baseline_test == pytest.approx((0.55, 0.60, 0.50))
    assert c.challenger_test == pytest.approx((0.60, 0.55, 0.50)) and c.comparison.diff == pytest.approx(0.0, abs=1e-12)
    assert c.comparison.pairs == 3 and c.comparison.test == "paired t" and c.machine is None
    # +0.10, +0.05, +0.10 on the fresh seeds: t = 0.0833 / (0.0289 / sqrt 3) = 5, beyond the noise (two-sided, df 2).
    better = _confirming(((4, 0.65), (5, 0.65), (6, 0.60)), {"o": "lucky"})
    a = stats.analyse(runs, y_test, confirmation=(base, better))
    assert a.beats_baseline and a.recommended == "lucky" and a.confirmation.beats_baseline
    assert a.confirmation.comparison.p_value == pytest.approx(_t_two_sided_p(5.0, 2), rel=1e-6)
    assert a.confirmation.comparison.p_value < 0.05
    # A race that found nothing beyond the noise does not stop the confirmation from deciding.
    runs["lucky"] = [_run(s, a, 0.66, {"o": "lucky"}) for s, a in ((1, 0.55), (2, 0.50), (3, 0.60))]
    assert stats.analyse(runs, y_test, confirmation=(base, better)).beats_baseline
    # Worse on the fresh seeds beyond the noise (the mirror image): never recommended.
    worse = _confirming(((4, 0.45), (5, 0.55), (6, 0.40)), {"o": "lucky"})
    a = stats.analyse(runs, y_test, confirmation=(base, worse))
    assert a.confirmation.comparison.diff < 0 and a.confirmation.comparison.p_value < 0.05 and not a.beats_baseline


def test_the_confirmation_pairs_only_the_seeds_both_ran_and_names_their_machines():
    y_test = np.arange(20) % 10
    base = _confirming(((4, 0.55), (5, 0.60), (6, 0.50)), {"o": "adam"})
    other = _confirming(((4, 0.65), (6, 0.60), (7, 0.9)), {"o": "lucky"})
    for run, machine in zip([*base, *other], ["A", "A", "B", "A", "B", "C"]):
        run.machine = machine
    c = stats.confirm(base, other, y_test)
    assert c.seeds == (4, 6) and c.challenger_test == pytest.approx((0.65, 0.60)) and c.machine == "A; B"
