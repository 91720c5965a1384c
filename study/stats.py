"""The report's statistics: intervals, paired comparisons with the baseline, Holm's correction, the recommendation.

Every number the report prints about uncertainty is computed here, by scipy and statsmodels;
rendering only formats them. Runs that share a seed share their initial weights and data order,
so arms are compared with the baseline in pairs: per seed over several seeds (a paired t-test on
the differences of test accuracy), per test image with one seed (McNemar's exact test).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from study.config import config_key

ALPHA = 0.05  # not 1 - 0.95, which is 0.05000000000000004: p = 0.05 would count as beyond the noise
CONFIDENCE = 0.95
TIE = 1e-9  # accuracies this close are a tie: float rounding, far below one image in a million


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion (test accuracy of one model on n images)."""
    from statsmodels.stats.proportion import proportion_confint

    if n <= 0:
        return (math.nan, math.nan)
    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    return (float(low), float(high))


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval of a mean over repeated runs (test accuracy over seeds); NaN for fewer than 2."""
    from scipy.stats import ttest_1samp

    if len(values) < 2:
        return (math.nan, math.nan)
    if np.ptp(values) == 0:  # scipy gives NaN for a zero spread; the interval is the point
        return (float(values[0]), float(values[0]))
    ci = ttest_1samp(np.asarray(values, float), 0.0).confidence_interval(confidence)
    return (float(ci.low), float(ci.high))


def mcnemar_p(base_correct: np.ndarray, other_correct: np.ndarray) -> float:
    """Two-sided exact McNemar p-value of two classifiers scored on the same images (booleans per image)."""
    from statsmodels.stats.contingency_tables import mcnemar

    base_correct, other_correct = np.asarray(base_correct, bool), np.asarray(other_correct, bool)
    only_base = int(np.sum(base_correct & ~other_correct))
    only_other = int(np.sum(other_correct & ~base_correct))
    if only_base + only_other == 0:
        return 1.0
    both = int(np.sum(base_correct & other_correct))
    table = [[both, only_base], [only_other, len(base_correct) - both - only_base - only_other]]
    return float(mcnemar(table, exact=True).pvalue)


@dataclass(frozen=True)
class Comparison:
    """An arm against the baseline: mean paired difference of test accuracy (arm minus baseline)."""

    # "paired t" (seeds), "McNemar" (one seed, per image), "paired t, images" (several seeds, per image:
    # see compare_runs) or "sign test" (identical differences in every seed: see compare_paired_seeds)
    test: str
    diff: float
    ci_low: float  # 95% interval of the difference
    ci_high: float
    p_value: float
    better: int  # seeds (pairs) in which the arm's test accuracy is higher
    pairs: int
    p_holm: float = math.nan  # after Holm's correction over the arms compared; see `holm`

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_paired_seeds(base: Mapping[int, float], other: Mapping[int, float]) -> Comparison:
    """Paired t-test over seeds: {seed: accuracy} of the baseline and of an arm, paired by seed.

    Identical differences in every seed leave no spread to test against, which is not certainty
    (one test image gained in each of 5 seeds): then the p-value is the sign test's, "better in k
    of k" and nothing more, and the interval is unknown (NaN).
    """
    from scipy.stats import binomtest, ttest_rel

    seeds = sorted(set(base) & set(other))
    if len(seeds) < 2:
        raise ValueError(f"a paired t-test needs at least 2 shared seeds, got {seeds}")
    a = np.array([other[s] for s in seeds], float)
    b = np.array([base[s] for s in seeds], float)
    d = a - b
    better = int(np.sum(d > 0))
    if np.ptp(d) < TIE:
        p = 1.0 if abs(d[0]) < TIE else float(binomtest(len(d), len(d)).pvalue)
        return Comparison("sign test", float(d[0]), math.nan, math.nan, p, better, len(seeds))
    result = ttest_rel(a, b)
    ci = result.confidence_interval(CONFIDENCE)
    return Comparison("paired t", float(d.mean()), float(ci.low), float(ci.high), float(result.pvalue),
                      better, len(seeds))


def compare_to_leader(val: Mapping[str, Mapping[int, float]]) -> tuple[str, dict[str, Comparison]]:
    """The arm with the best mean (the leader), and every other arm against it on the seeds all of them ran.

    One linear model, accuracy = arm + seed + noise (F-race's blocked design, on the values): each
    difference is paired by seed, and the seed-to-seed noise is pooled over the arms, so two seeds of
    several arms already weigh as much as many seeds of one. No spread left in the model is not
    certainty: then no difference is beyond the noise (p = 1, no interval).
    """
    seeds = _shared_seeds(val)
    means = {name: float(np.mean([v[s] for s in seeds])) for name, v in val.items()}
    leader = max(means, key=means.get)  # the first on a tie
    fit, others, flat = _pooled(val, seeds, leader)
    ci = fit.conf_int(alpha=1 - CONFIDENCE)
    out = {}
    for i, name in enumerate(others, 1):
        better = sum(val[name][s] > val[leader][s] for s in seeds)
        out[name] = Comparison("pooled t", float(fit.params[i]), math.nan if flat else float(ci[i][0]),
                               math.nan if flat else float(ci[i][1]), 1.0 if flat else float(fit.pvalues[i]),
                               better, len(seeds))
    return leader, out


def cannot_beat(val: Mapping[str, Mapping[int, float]], baseline: str, most_seeds: int) -> dict[str, float]:
    """{arm: the one-sided 95% upper bound of its gain over the baseline} of the arms that cannot beat it.

    An arm cannot beat the baseline when even that optimistic bound is below the gain a paired
    t-test on `most_seeds` seeds finds beyond the noise half the time, t(0.975, K - 1) x sigma x
    sqrt(2 / K), sigma the seed noise pooled as in `compare_to_leader`: more seeds could not change the
    answer, so they are not spent (a futility bound, as in group-sequential trials). No spread left in
    the model decides nothing.
    """
    from scipy.stats import t

    fit, others, flat = _pooled(val, _shared_seeds(val), baseline)
    if flat:
        return {}
    needed = t.ppf(1 - ALPHA / 2, most_seeds - 1) * math.sqrt(fit.scale) * math.sqrt(2 / most_seeds)
    bound = {name: float(fit.params[i] + t.ppf(CONFIDENCE, fit.df_resid) * fit.bse[i])
             for i, name in enumerate(others, 1)}
    return {name: b for name, b in bound.items() if b < needed}


def _shared_seeds(val: Mapping[str, Mapping[int, float]]) -> list[int]:
    return sorted(set.intersection(*(set(v) for v in val.values())))


def _pooled(val: Mapping[str, Mapping[int, float]], seeds: list[int], reference: str) -> tuple[Any, list[str], bool]:
    """The least-squares fit of accuracy = arm + seed + noise, each arm's term relative to `reference`;
    the other arms in the order of their terms; and whether the model has no spread left."""
    import statsmodels.api as sm

    others = [name for name in val if name != reference]
    if len(seeds) < 2 or not others:
        raise ValueError(f"a pooled comparison needs 2 arms and 2 shared seeds, got {list(val)} and {seeds}")
    rows = [(name, s) for name in [reference, *others] for s in seeds]
    design = np.array([[1.0] + [float(name == o) for o in others] + [float(s == t) for t in seeds[1:]]
                       for name, s in rows])
    fit = sm.OLS(np.array([val[name][s] for name, s in rows], float), design).fit()
    return fit, others, not fit.ssr > TIE ** 2 * len(rows)


def compare_paired_images(base_correct: np.ndarray, other_correct: np.ndarray) -> Comparison:
    """One seed: McNemar's exact test, and a paired t interval of the difference over the test images.

    Over thousands of images the t interval on per-image differences (-1, 0, 1) is the Wald interval
    for paired proportions. It covers only the sampling of test images, not seed-to-seed variation.
    """
    c = compare_images([base_correct], [other_correct])
    return replace(c, test="McNemar", p_value=mcnemar_p(base_correct, other_correct))


def compare_images(base_correct: Sequence[np.ndarray], other_correct: Sequence[np.ndarray]) -> Comparison:
    """Several seeds, paired by test image: each image's difference of correctness averaged over the seeds.

    The images are the independent units (the same image is hard for every seed), so the t-test and
    interval run over the images: they cover the sampling of test images, not seed-to-seed variation.
    """
    from scipy.stats import ttest_1samp

    per_seed = np.asarray(other_correct, float) - np.asarray(base_correct, float)  # seeds x images
    d = per_seed.mean(axis=0)
    better = int(np.sum(per_seed.mean(axis=1) > 0))
    if np.ptp(d) == 0:  # every image alike: nothing varies
        p = 1.0 if d[0] == 0 else 0.0
        return Comparison("paired t, images", float(d[0]), float(d[0]), float(d[0]), p, better, len(per_seed))
    result = ttest_1samp(d, 0.0)
    ci = result.confidence_interval(CONFIDENCE)
    return Comparison("paired t, images", float(d.mean()), float(ci.low), float(ci.high), float(result.pvalue),
                      better, len(per_seed))


def holm(comparisons: Mapping[str, Comparison | None]) -> dict[str, Comparison | None]:
    """Holm's step-down correction of the p-values of every comparison (family-wise error 5%).

    None marks an arm with the baseline's own configuration: no comparison, not in the family.
    """
    from statsmodels.stats.multitest import multipletests

    tested = [name for name, c in comparisons.items() if c is not None]
    out = dict(comparisons)
    if tested:
        adjusted = multipletests([comparisons[n].p_value for n in tested], alpha=ALPHA, method="holm")[1]
        for name, p in zip(tested, adjusted):
            out[name] = replace(comparisons[name], p_holm=float(p))
    return out


def beyond_noise(p_value: float, p_holm: float | None = None) -> bool:
    """Whether a difference is larger than the noise: its Holm-corrected p-value where it has one (not None or
    NaN), else its own, below ALPHA."""
    p = p_value if p_holm is None or math.isnan(p_holm) else p_holm
    return p < ALPHA


def verdict(c: Comparison) -> str:
    """"better", "worse" or "noise": whether the difference is larger than the noise after Holm's correction."""
    if not beyond_noise(c.p_value, c.p_holm):
        return "noise"
    return "better" if c.diff > 0 else "worse"


def challenger(val_accuracy: Mapping[str, float], dropped: Mapping[str, tuple[int, str]] | None = None) -> str | None:
    """The arm with the highest mean validation accuracy over its retrainings (the first on a tie), of the arms the
    race did not drop (`dropped`: {arm: (seeds run, why)}); None if there is none: nothing is left to beat the
    baseline. The test set never picks: it only confirms, or not, what validation picked.
    """
    kept = [name for name in val_accuracy if name not in (dropped or {})]
    if not kept:
        return None
    best = max(val_accuracy[name] for name in kept)
    return next(name for name in kept if val_accuracy[name] == best)


def beats_baseline(c: Comparison | None) -> bool:
    """The decision: one comparison, fixed before the test set is read, at 5% two-sided (no Holm: one test).

    Made on the confirmation seeds (`Confirmation`), which neither the searches nor the race used: the
    luck that helped an arm win on validation does not carry over to them. Only a positive
    difference on the test set beyond the noise counts.
    """
    return c is not None and c.diff > 0 and c.p_value < ALPHA


@dataclass(frozen=True)
class Confirmation:
    """The challenger and the baseline on the confirmation seeds, paired by seed: the comparison that decides."""

    seeds: tuple[int, ...]
    baseline_test: tuple[float, ...]  # test accuracy per seed, in seed order
    challenger_test: tuple[float, ...]
    comparison: Comparison  # challenger minus baseline (compare_runs)
    machine: str | None  # the machine kind(s) that trained the pairs, "; "-joined where several

    @property
    def beats_baseline(self) -> bool:
        return beats_baseline(self.comparison)


def confirm(base: Sequence[Any], other: Sequence[Any], y_test: np.ndarray) -> Confirmation:
    """The confirmation's comparison of the challenger's runs (`other`) with the baseline's, on the seeds both ran."""
    theirs = {r.seed: r for r in other}
    pairs = sorted(((b, theirs[b.seed]) for b in base if b.seed in theirs), key=lambda pair: pair[0].seed)
    c = compare_runs([b for b, _ in pairs], [o for _, o in pairs], y_test)
    kinds = sorted({getattr(r, "machine", None) for pair in pairs for r in pair} - {None})
    return Confirmation(tuple(b.seed for b, _ in pairs), tuple(b.test_accuracy for b, _ in pairs),
                        tuple(o.test_accuracy for _, o in pairs), c, "; ".join(kinds) or None)


def summarize(test_accuracies: Sequence[float], n_test: int) -> dict[str, Any]:
    """Mean test accuracy over seeds and its 95% interval: Wilson for one seed, Student-t over several."""
    acc = [float(a) for a in test_accuracies]
    if len(acc) == 1:
        low, high = wilson_interval(round(acc[0] * n_test), n_test)
        return {"test_accuracy": acc[0], "test_accuracy_std": math.nan, "ci_low": low, "ci_high": high,
                "interval": "Wilson"}
    low, high = mean_interval(acc)
    return {"test_accuracy": float(np.mean(acc)), "test_accuracy_std": float(np.std(acc, ddof=1)),
            "ci_low": low, "ci_high": high, "interval": "t"}


# --- the report's analysis of its runs -------------------------------------------------------------

@dataclass(frozen=True)
class Analysis:
    """Everything the report says about uncertainty: per-arm summaries, comparisons, the recommendation."""

    arms: dict[str, dict[str, Any]]  # summarize_runs per arm, over the race's seeds
    comparisons: dict[str, Comparison | None]  # every arm but the baseline, Holm-corrected; None: its configuration
    challenger: str | None  # the best mean validation accuracy of the arms that could replace the baseline
    beats_baseline: bool  # the decision (`beats_baseline`): on the confirmation, or exploratory without one
    baseline: str = "baseline"
    family: int = 0  # comparisons in Holm's family: one per configuration, not per arm
    confirmation: Confirmation | None = None  # None: none was run (no challenger left, or --confirm-seeds 0)
    exploratory: bool = False  # --confirm-seeds 0: the race's own runs decided

    @property
    def recommended(self) -> str:
        """The challenger if it beats the baseline, else the baseline."""
        return self.challenger if self.beats_baseline else self.baseline


def summarize_runs(runs: Sequence[Any], n_test: int) -> dict[str, Any]:
    """An arm's runs (study.records.Run, one per seed): test accuracy with its interval, and means over seeds."""
    val = [r.history["val_accuracy"] for r in runs]
    return {
        **summarize([r.test_accuracy for r in runs], n_test),
        "test_loss": float(np.mean([r.test_loss for r in runs])),
        "final_train_accuracy": float(np.mean([r.history["accuracy"][-1] for r in runs])),
        "final_val_accuracy": float(np.mean([v[-1] for v in val])),
        "best_val_accuracy": float(np.mean([max(v) for v in val])),
        "best_epoch": float(np.mean([int(np.argmax(v)) + 1 for v in val])),
        "seconds": float(np.mean([r.seconds for r in runs])),
        "seeds": [r.seed for r in runs],
        "test_accuracies": [r.test_accuracy for r in runs],
        "val_accuracies": [v[-1] for v in val],
    }


def compare_runs(base: Sequence[Any], other: Sequence[Any], y_test: np.ndarray) -> Comparison | None:
    """An arm against the baseline, paired by seed (several seeds) or by test image (one seed).

    None for the baseline's own configuration. Seeds run by one side only (an arm dropped by the
    race) are left out. Identical differences in every seed leave the seeds no spread to test
    against: then the pairs are taken per test image, over the seeds (`compare_images`).
    """
    if {config_key(r.hyperparameters) for r in [*base, *other]} == {config_key(base[0].hyperparameters)}:
        return None
    theirs = {r.seed: r for r in other}
    pairs = [(b, theirs[b.seed]) for b in base if b.seed in theirs]
    if not pairs:
        raise ValueError("no seed run by both the baseline and the arm")
    right = ([b.y_pred == y_test for b, _ in pairs], [o.y_pred == y_test for _, o in pairs])
    if len(pairs) == 1:
        return compare_paired_images(right[0][0], right[1][0])
    gained = {int(np.sum(o)) - int(np.sum(b)) for b, o in zip(*right)}  # in images: exact, unlike accuracies
    if len(gained) == 1:
        return compare_images(*right)
    return compare_paired_seeds({b.seed: b.test_accuracy for b, _ in pairs},
                                {o.seed: o.test_accuracy for _, o in pairs})


def stand_ins(configurations: Mapping[str, Mapping[str, Any]], baseline: str) -> dict[str, str]:
    """{arm: the arm that stands for its configuration}: arms of one configuration (in any key order) are one,
    the baseline standing for its own, otherwise the first arm."""
    first: dict[str, str] = {}
    keys = {name: config_key(hp) for name, hp in configurations.items()}
    for name in sorted(configurations, key=lambda n: n != baseline):  # stable: the baseline, then in order
        first.setdefault(keys[name], name)
    return {name: first[keys[name]] for name in configurations}


def pick(runs: Mapping[str, Sequence[Any]], baseline: str = "baseline",
         dropped: Mapping[str, tuple[int, str]] | None = None) -> str | None:
    """The challenger of the race's runs (`challenger`), among the arms of a configuration other than the baseline's."""
    first = stand_ins({name: rs[0].hyperparameters for name, rs in runs.items()}, baseline)
    val = {name: float(np.mean([r.history["val_accuracy"][-1] for r in rs])) for name, rs in runs.items()
           if first[name] != first[baseline]}
    return challenger(val, dropped)


def analyse(runs: Mapping[str, Sequence[Any]], y_test: np.ndarray, baseline: str = "baseline",
            dropped: Mapping[str, tuple[int, str]] | None = None,
            confirmation: Sequence[Sequence[Any]] | None = None) -> Analysis:
    """Summaries of every arm, each arm against the baseline (Holm over the arms), and the recommendation.

    `runs`: the race's, {arm: its runs}; `dropped`: {arm: (seeds run, why)} for the arms the race dropped.
    The challenger (`pick`) is picked by validation; `confirmation`: (the baseline's runs, the challenger's
    runs) on the confirmation seeds, which alone decide (`beats_baseline`). None: exploratory, the race's own
    test accuracies decide (--confirm-seeds 0). A dropped arm is never the challenger.
    """
    dropped = dropped or {}
    arms = {name: {**summarize_runs(rs, len(y_test)),
                   **dict(zip(("dropped_after", "dropped_because"), dropped.get(name, (None, None))))}
            for name, rs in runs.items()}
    # Arms of one configuration (a search's best that is the SGD arm's) are one comparison in Holm's family.
    first = stand_ins({name: rs[0].hyperparameters for name, rs in runs.items()}, baseline)
    family = holm({name: compare_runs(runs[baseline], rs, y_test) for name, rs in runs.items()
                   if name != baseline and first[name] == name})
    comparisons = {name: family.get(first[name]) for name in runs if name != baseline}
    picked = pick(runs, baseline, dropped)
    confirmed = None
    if picked is not None and confirmation is not None:
        confirmed = confirm(confirmation[0], confirmation[1], y_test)
        decided = confirmed.beats_baseline
    else:
        decided = picked is not None and beats_baseline(comparisons[picked])
    return Analysis(arms, comparisons, picked, decided, baseline, sum(c is not None for c in family.values()),
                    confirmed, picked is not None and confirmation is None)


def classification(y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]) -> tuple[dict, np.ndarray]:
    """scikit-learn's classification report (as a dict) and confusion matrix, every class listed."""
    from sklearn.metrics import classification_report, confusion_matrix

    labels = range(len(class_names))
    report = classification_report(y_true, y_pred, labels=labels, target_names=list(class_names),
                                   output_dict=True, zero_division=0)
    return report, confusion_matrix(y_true, y_pred, labels=labels)
