"""The report's sentences: what it concludes, and how, in plain words; the tables and figures are `study.render`'s.

Every number comes from `study.stats` (through `Analysis`) and is written by `study.formats`. "Beyond the
noise" in the headline means the decision's own rule (`stats.beats_baseline`, on the confirmation seeds);
the Holm-corrected verdicts over every arm describe the race and say so.
"""
from __future__ import annotations

from typing import Any

from study import racing, stats
from study.config import BASELINE, ReportConfig
from study.formats import acc_prose, count, epochs_text, hp_text, is_finite, pct, points, seeds_text

# Why the race dropped an arm, in the report's words.
DROPPED_BECAUSE = {racing.WORSE: "worse on validation than the best arm racing, beyond the noise",
                   racing.CANNOT_BEAT: "could not beat the baseline beyond the noise on validation"}
SHORT_BECAUSE = {racing.WORSE: "worse on validation", racing.CANNOT_BEAT: "could not beat the baseline on validation"}
# What a test's interval covers, where it is not the seeds.
IMAGES_ONLY = ("the interval covers the sampling of the test images only, not seed-to-seed variation")


def summary_text(analysis: stats.Analysis, hyperparameters: dict[str, dict[str, Any]], cfg: ReportConfig,
                 searched: bool) -> str:
    """The answer in a few short sentences: the recommendation, the evidence it rests on, how it was picked."""
    parts = []
    if not searched:
        parts.append(f"No search was found in `{cfg.directory}`: this report answers the notebook's own question "
                     "only, the baseline (Adam) against SGD and RMSprop.")
    parts += recommendation_sentences(analysis, hyperparameters, cfg)
    if cfg.seeds == 1 or cfg.confirm_seeds == 1:
        parts.append(f"With one seed, {IMAGES_ONLY} (about a point of test accuracy for the notebook's CNN): "
                     "run more seeds before trusting a difference of a point or two.")
    if cfg.epochs != BASELINE.epochs:
        parts.append(f"Every model trained for {epochs_text(cfg.epochs)} instead of the notebook's {BASELINE.epochs}: "
                     "a quick look.")
    return " ".join(parts)


def recommendation_sentences(analysis: stats.Analysis, hyperparameters: dict[str, dict[str, Any]],
                             cfg: ReportConfig) -> list[str]:
    """The headline and its evidence: the decision first, then how the challenger was picked."""
    base, pick = analysis.arms[analysis.baseline], analysis.challenger
    keep = f"**Keep the baseline** ({hp_text(hyperparameters[analysis.baseline])}): test accuracy {acc_prose(base)}."
    if pick is None:
        if analysis.arms and any(a.get("dropped_after") is not None for a in analysis.arms.values()):
            return [keep, f"The race dropped every challenger on validation: {short_dropped_text(analysis)}.",
                    "Nothing is left to beat the baseline, so nothing was confirmed, and the baseline trained no "
                    "more seeds."]
        return [keep, "No other configuration was compared with it."]
    a = analysis.arms[pick]
    named = f"{pick} ({hp_text(hyperparameters[pick])})"
    picked = (f"the race picked it on validation, {pct(a['final_val_accuracy'])} against the baseline's "
              f"{pct(base['final_val_accuracy'])} over {seeds_text(a['seeds'])}")
    dropped = f" It dropped {short_dropped_text(analysis)}." if dropped_by_reason(analysis) else ""
    if analysis.confirmation is not None:
        confirmed = analysis.confirmation
        c, seeds = confirmed.comparison, confirmed.seeds
        evidence = (f"On {count(len(seeds), 'fresh seed')} ({seeds_text(seeds)}), which no search and no race used, "
                    f"{comparison_prose(c, confirmed.challenger_test, confirmed.baseline_test)}")
        caveat, headline = [], "Recommended"
    else:
        c = analysis.comparisons[pick]
        evidence = f"On the race's own {seeds_text(a['seeds'])}, {comparison_prose(c, a['test_accuracies'], [])}"
        caveat = ["This claim is exploratory, not confirmed (`--confirm-seeds 0`): the runs that picked the "
                  "challenger also tested it, so its test difference is optimistic."]
        headline = "Recommended, exploratory"
    if analysis.beats_baseline:
        first = [f"**{headline}: {pick}** ({hp_text(hyperparameters[pick])}).", f"{evidence}: {verdict_words(c)}."]
    else:
        first = [keep, f"Its challenger, {named}, does not beat it. {evidence}: {verdict_words(c)}."]
    return [*first, f"{picked.capitalize()}.{dropped}", *caveat]


def comparison_prose(c: stats.Comparison, challenger: Any, baseline: Any) -> str:
    """"it reaches 72.2% against the baseline's 69.5%: +2.7 points (95% interval +2.1 to +3.2), p = 0.0002
    (paired t), better in 5 of 5 seeds" (the means only where given)."""
    import numpy as np

    means = (f"it reaches {pct(float(np.mean(challenger)))} test accuracy against the baseline's "
             f"{pct(float(np.mean(baseline)))}: " if len(challenger) and len(baseline) else "")
    interval = (f" (95% interval {points(c.ci_low)} to {points(c.ci_high)})" if np.isfinite(c.ci_low) else
                " (interval unknown: the same difference in every seed)")
    pairs = f", better in {c.better} of {c.pairs} seeds" if c.test in ("paired t", "sign test") else ""
    return f"{means}{points(c.diff)} points{interval}, p = {c.p_value:.2g} ({c.test}){pairs}"


def verdict_words(c: stats.Comparison) -> str:
    """Whether one comparison, uncorrected, is beyond the noise: what the decision rule says of it."""
    beyond = c.p_value < stats.ALPHA
    images = c.test in ("McNemar", "paired t, images")
    if not beyond:
        return "within the sampling noise of the test images: it could be chance" if images else \
            "within the noise: it could be chance"
    side = "better" if c.diff > 0 else "worse"
    if images:
        return f"{side} than the baseline beyond the sampling of the test images ({IMAGES_ONLY})"
    return f"{side} than the baseline beyond the noise"


def beyond_noise_text(analysis: stats.Analysis) -> str:
    """The Holm-corrected verdicts over every arm, on the race's seeds: a description of the race, labelled so."""
    verdicts = {n: stats.verdict(c) for n, c in analysis.comparisons.items() if c is not None}
    diff = {n: f"{n} ({points(c.diff)} points)" for n, c in analysis.comparisons.items() if c is not None}
    holm = f" (Holm's correction over the {analysis.family} comparisons)" if analysis.family > 1 else ""
    better = [diff[n] for n, v in verdicts.items() if v == "better"]
    worse = [diff[n] for n, v in verdicts.items() if v == "worse"]
    text = (f"On the race's seeds{holm}, better than the baseline beyond the noise: {', '.join(better)}."
            if better else f"On the race's seeds, no configuration is better than the baseline beyond the noise{holm}.")
    if worse:
        text += f" Worse beyond the noise: {', '.join(worse)}."
    return text


def method_text(analysis: stats.Analysis) -> str:
    kinds = {c.test for c in analysis.comparisons.values() if c is not None}
    if kinds <= {"McNemar"}:
        return ("paired by test image (one seed): McNemar's exact test, and the difference with its 95% interval "
                f"over the test images ({IMAGES_ONLY})")
    text = ("paired by seed (same initial weights and data order): mean difference of test accuracy with a "
            "paired Student-t 95% interval and the paired t-test")
    if "paired t, images" in kinds:
        text += ("; where the difference is the same number of test images in every seed, the seeds show no spread "
                 "to test against, so that comparison is paired by test image over the seeds (\"paired t, images\": "
                 f"{IMAGES_ONLY})")
    return text


def holm_text(analysis: stats.Analysis) -> str:
    tested = [c for c in analysis.comparisons.values() if c is not None]
    if len(tested) < 2:
        return ""
    return (f"Their p-values are corrected for the {len(tested)} comparisons with Holm's method (a difference counts "
            "as larger than the noise when its corrected p is below 0.05).")


def selection_text() -> str:
    """Why the race's test numbers are not the decision's."""
    return ("These runs are the race's, on its seeds (the selection seeds): the picked arm won on their validation "
            "accuracy, and a run's validation and test accuracy go together, so its test numbers here are "
            "optimistic. The recommendation rests on the confirmation alone.")


def decision_text(analysis: stats.Analysis, cfg: ReportConfig) -> str:
    """How the recommendation was made: validation picks the challenger, fresh seeds confirm it or not."""
    if analysis.exploratory or not cfg.confirm_seeds:
        return ("The challenger is the configuration with the best mean validation accuracy of the race's runs; "
                "with `--confirm-seeds 0` its own paired test difference on those runs decides (positive, "
                "uncorrected p below 0.05): an exploratory claim, optimistic for the challenger.")
    text = ("The challenger is the configuration with the best mean validation accuracy of the race's runs; the "
            f"test set picks nothing. It and the baseline then train {count(cfg.confirm_seeds, 'more seed')} "
            f"({seeds_text(cfg.confirmation_seeds)}), each seed's pair on one machine, and the challenger replaces "
            "the baseline only if its paired test difference on those seeds is positive and the paired t-test's "
            "p-value is below 0.05 (one comparison, fixed before the test set was read).")
    if analysis.challenger is None:
        return text + " No challenger was left, so nothing was confirmed."
    outcome = "it does: it is the recommendation" if analysis.beats_baseline else "it does not: keep the baseline"
    return f"{text} The challenger is {analysis.challenger}, and {outcome}."


def racing_text(analysis: stats.Analysis) -> str:
    """Which arms the race dropped, and why their numbers rest on fewer seeds."""
    if not dropped_by_reason(analysis):
        return ""
    return (f"**Dropped by the race:** {dropped_text(analysis)}. Worse: paired by seed, the seed noise pooled over "
            "the arms, Holm over the arms still racing. Could not beat the baseline: even the optimistic end of "
            "its one-sided 95% interval on validation was below the gain a paired test on every seed finds beyond "
            "the noise half the time. A dropped arm's numbers are over the seeds it ran, its difference paired with "
            "the baseline's same seeds (docs/racing.md).")


def dropped_by_reason(analysis: stats.Analysis) -> dict[str, list[str]]:
    """{why: ["sgd after 2 seeds", ...]} of the arms the race dropped, in the arms' order."""
    out: dict[str, list[str]] = {}
    for name, a in analysis.arms.items():
        if a.get("dropped_after") is not None:
            out.setdefault(a["dropped_because"], []).append(f"{name} after {count(a['dropped_after'], 'seed')}")
    return out


def dropped_text(analysis: stats.Analysis) -> str:
    """"worse on validation than the best arm racing, beyond the noise: sgd after 2 seeds; ..." """
    return "; ".join(f"{DROPPED_BECAUSE.get(why, why)}: {', '.join(arms)}"
                     for why, arms in dropped_by_reason(analysis).items())


def short_dropped_text(analysis: stats.Analysis) -> str:
    """"sgd and rmsprop after 2 seeds (worse on validation); hyperband best after 3 (could not beat the baseline
    on validation)" """
    groups: dict[tuple[str, int], list[str]] = {}
    for name, a in analysis.arms.items():
        if a.get("dropped_after") is not None:
            groups.setdefault((a["dropped_because"], a["dropped_after"]), []).append(name)
    return "; ".join(f"{_and(names)} after {count(n, 'seed')} ({SHORT_BECAUSE.get(why, why)})"
                     for (why, n), names in groups.items())


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def initial_weights_text(differing: list[str]) -> str:
    if not differing:
        return ""
    return (f" **Initial weights differ** from the baseline's of the same seed for {', '.join(differing)}: their "
            "layers differ in name or shape, or they ran before initial weights were seeded per layer. Those pairs "
            "still share the data order; their differences also carry the effect of other initial weights, so "
            "pairing removes less of the seed-to-seed noise for them.")


def seeds_sentence(cfg: ReportConfig, search_seeds: dict[str, int]) -> str:
    """Which seeds the report used, and why those."""
    race = f"The race used {seeds_text(cfg.race_seeds)}"
    confirming = (f", the confirmation {seeds_text(cfg.confirmation_seeds)} (the challenger and the baseline only)"
                  if cfg.confirm_seeds else "; no confirmation (`--confirm-seeds 0`)")
    if not search_seeds:
        return f"{race}{confirming}."
    used = sorted(set(search_seeds.values()))
    return (f"{race}{confirming}. Every trial of a search trains with the search's seed ({seeds_text(used)} here), "
            "so a retraining at that seed would repeat a trial, the very run that made its configuration look good: "
            "the report's seeds start past it, and the confirmation's were used by neither the searches nor the race.")


def notebook_prose() -> str:
    return ("The notebook trained on the official CIFAR-10 pixels; this study reads the same images as JPEG files, "
            "whose compression costs the model a little accuracy. And the notebook's SGD and RMSprop runs continued "
            "training the Adam model's weights, so their validation accuracies measured a fine-tuned Adam model, not "
            "the optimizers: here each optimizer starts from the same initial weights.")


# --- the ablation's sentences ------------------------------------------------------------------------

def _beyond(d: dict[str, Any]) -> bool:
    return stats.beyond_noise(d["p_value"], d.get("p_holm"))


def ablation_answer(numbers: dict[str, Any]) -> str:
    """The ablation in a sentence or two: which components carry the gain, which add nothing beyond the noise."""
    total = numbers["total"]
    gain = (f"{points(total['mean'])} points ({points(total['ci_low'])} to {points(total['ci_high'])})"
            if is_finite(total["ci_low"])
            else f"{points(total['mean'])} points (the same in every seed: no interval)")
    if not total["beyond_noise"]:
        return (f"The target's gain over the source, {gain}, is within the noise: no component can carry a gain "
                "beyond it.")
    added = {e["component"]: e for e in numbers["one_at_a_time"]["added"]}
    removed = {e["component"]: e for e in numbers["one_at_a_time"]["removed"]}
    matters = [c for c in added if _beyond(added[c]["diff_vs_source"]) or _beyond(removed[c]["diff_vs_target"])]
    nothing = [c for c in added if c not in matters]
    shares = {e["component"]: e["share_of_total"] or 0.0 for e in numbers["path"]}
    top = max(shares, key=shares.get) if shares else None
    parts = []
    if top is not None and top in matters:
        most = "Most" if shares[top] > 0.5 else "The largest part"
        parts.append(f"{most} of the {gain} gain is {top}: {100 * shares[top]:.0f}% of it on the path, "
                     f"{_sides(added[top], removed[top])}")
    others = [c for c in matters if c != top]
    if others:
        each = [f"{c} ({_sides(added[c], removed[c], '; ')})" for c in others]
        parts.append(f"{_and(each)} also "
                     f"{'matters' if len(others) == 1 else 'matter'} beyond the noise")
    if nothing:
        parts.append(f"{_and(nothing)} {'adds' if len(nothing) == 1 else 'add'} nothing beyond the noise, "
                     "added or removed")
    interacting = [c for c in added if _beyond(added[c]["interaction"])]
    if interacting:
        parts.append(f"{_and(interacting)} {'interacts' if len(interacting) == 1 else 'interact'} beyond the "
                     "noise (it helps the source and the target unequally)")
    elif matters:
        parts.append("no component interacts beyond the noise (Holm over the components)")
    if not parts:
        parts.append(f"The {gain} gain is beyond the noise, but no single component's is: it takes several together")
    return "; ".join(parts) + "."


def _sides(added: dict[str, Any], removed: dict[str, Any], sep: str = ", ") -> str:
    """"+1.5 points added to the source; -0.6 points removed from the target, within the noise": both sides."""
    return f"{_side(added['diff_vs_source'], 'added to the source')}{sep}" \
           f"{_side(removed['diff_vs_target'], 'removed from the target')}"


def _side(diff: dict[str, Any], what: str) -> str:
    return f"{points(diff['mean'])} points {what}{'' if _beyond(diff) else ', within the noise'}"


def ablation_seeds_text() -> str:
    return ("the report's confirmation seeds and the next ones, which no search and no race trained, so every "
            "difference below is paired by seed and none rests on a run that helped pick a configuration.")


def one_at_a_time_text() -> str:
    return ("The source plus each component alone, and the target minus each component alone, every configuration on "
            "every seed: the confirmatory view. Each difference is paired by seed (a paired t-test and its 95% "
            "interval), its p-value corrected with Holm's method over the components. A component's interaction is its "
            "gain when added to the source minus its loss when removed from the target, seed by seed: near 0 when it "
            "helps alike on both sides; beyond the noise when another component stands in for it, or needs it.")


def path_text() -> str:
    return ("From the source, each step adds the remaining change that helps most on validation (Fawcett & Hoos's "
            "greedy path); a step's candidates are raced on validation, the one it takes has every seed. The order "
            "was chosen on validation, so the test numbers here describe it and are not a confirmatory test; each "
            "step's share of the total gain is given only where the total gain is beyond the noise.")
