"""metrics.json: every number of a report by name, and the rows of its comparison table, from `stats.Analysis`.

Accuracies and differences are fractions of test accuracy. Nothing here depends on how long a rendering
took: a re-render gives the same bytes.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from study import racing, stats
from study.config import BASELINE, OPTIMIZER_COMPARISON, TRAINING_HYPERPARAMETERS, ReportConfig, config_key
from study.formats import SAME_CONFIGURATION
from study.recipe import recipe
from study.records import Run, Search

Runs = dict[str, list[Run]]  # arm name: its runs, one per seed


def complete(hyperparameters: dict[str, Any], names: list[str], batch_size: int) -> dict[str, Any]:
    """The hyperparameters `names` of a configuration, the training ones it leaves out at the value it trains with
    (the notebook's, the report's batch size): a table shows "batch 64", not a blank."""
    trains_with = recipe(hyperparameters, batch_size)._asdict()
    return {name: hyperparameters.get(name, trains_with.get(name)) if name in TRAINING_HYPERPARAMETERS
            else hyperparameters.get(name) for name in names}


def every_value(hyperparameters: dict[str, Any], batch_size: int) -> dict[str, Any]:
    """A configuration's hyperparameters with every training one it trains with (`complete` of all of them)."""
    return complete(hyperparameters, list(dict.fromkeys([*hyperparameters, *TRAINING_HYPERPARAMETERS])), batch_size)


def hyperparameter_names(runs: Runs) -> list[str]:
    """Every hyperparameter any arm names, in the order they first appear."""
    return list(dict.fromkeys(k for rs in runs.values() for r in rs for k in r.hyperparameters))


def comparison_rows(runs: Runs, analysis: stats.Analysis, searches: list[Search],
                    batch_size: int = BASELINE.batch_size) -> list[dict[str, Any]]:
    """One row per arm, the baseline first: its summary over the race's seeds, its searches' best score and its
    comparison with the baseline (Holm over the arms)."""
    rows = []
    names = hyperparameter_names(runs)
    optimizer_arms = {"baseline", *OPTIMIZER_COMPARISON}
    for name, arm_runs in runs.items():
        searched = name.split(" = ")[-1] not in optimizer_arms  # the others come from the searches
        hp = arm_runs[0].hyperparameters
        rows.append({
            "name": name, "hyperparameters": hp, "trains_with": complete(hp, names, batch_size), **analysis.arms[name],
            "search_val_accuracy": racing.search_score(hp, searches, batch_size) if searched else math.nan,
            **comparison_columns(analysis.comparisons.get(name), same=name in analysis.comparisons),
        })
    return rows


def comparison_columns(c: stats.Comparison | None, same: bool = False) -> dict[str, Any]:
    """The comparison as table columns; `same`: an arm with the baseline's configuration, no comparison (null)."""
    if c is None and same:
        return {"test": None, "p_value": None, "p_holm": None, "diff_vs_baseline": None, "diff_ci_low": None,
                "diff_ci_high": None, "better": None, "pairs": None, "verdict": SAME_CONFIGURATION}
    if c is None:  # the baseline itself
        return {"test": "", "p_value": math.nan, "p_holm": math.nan, "diff_vs_baseline": 0.0,
                "diff_ci_low": math.nan, "diff_ci_high": math.nan, "better": 0, "pairs": 0, "verdict": ""}
    return {"test": c.test, "p_value": c.p_value, "p_holm": c.p_holm, "diff_vs_baseline": c.diff,
            "diff_ci_low": c.ci_low, "diff_ci_high": c.ci_high, "better": c.better, "pairs": c.pairs,
            "verdict": stats.verdict(c)}


def confirmation_json(analysis: stats.Analysis) -> dict[str, Any] | None:
    """`recommendation.confirmation`: the challenger and the baseline on the confirmation seeds, the decision's data."""
    c = analysis.confirmation
    if c is None:
        return None
    return {"seeds": list(c.seeds), "baseline_test": list(c.baseline_test), "challenger_test": list(c.challenger_test),
            "test": c.comparison.test, "difference": c.comparison.diff, "ci_low": c.comparison.ci_low,
            "ci_high": c.comparison.ci_high, "p_value": c.comparison.p_value, "better": c.comparison.better,
            "pairs": c.comparison.pairs, "beats_baseline": c.beats_baseline, "machine": c.machine}


def unique_runs(runs: Runs) -> list[Run]:
    """Each retraining once: a configuration shared by two arms is one run."""
    return list({config_key([r.hyperparameters, r.seed]): r for rs in runs.values() for r in rs}.values())


def metrics_json(cfg: ReportConfig, data, searches: list[Search], runs: Runs, analysis: stats.Analysis,
                 summary: str, warnings: list[str], invocation: dict[str, Any],
                 confirmation_runs: tuple[list[Run], list[Run]] | None = None) -> dict[str, Any]:
    names = list(data.class_names)
    first = runs["baseline"][0]
    report, matrix = stats.classification(data.y_test, first.y_pred, names)
    base = analysis.arms["baseline"]
    pick, challenger = analysis.recommended, analysis.challenger
    every = unique_runs({**runs, "confirmation": [r for side in (confirmation_runs or ()) for r in side]})
    own = [r for r in every if not r.reused_from]
    return {
        "config": cfg.to_dict(), "class_names": names, "test_size": len(data.y_test), "warnings": warnings,
        "summary": summary,
        "splits": {"train": len(data.y_train), "validation": len(data.y_val), "test": len(data.y_test)},
        "seeds": {"race": list(cfg.race_seeds), "confirmation": list(cfg.confirmation_seeds),
                  "searches": sorted({s.config.seed for s in searches})},
        "baseline": {"test_accuracy": base["test_accuracy"], "test_loss": base["test_loss"],
                     "classification_report": report, "confusion_matrix": matrix.tolist()},
        "comparison": [{k: v for k, v in row.items() if k != "trains_with"}
                       for row in comparison_rows(runs, analysis, searches, cfg.batch_size)],
        # Every value each arm trained with, the training ones it leaves at their default included (batch size...).
        "arms": {n: {"hyperparameters": every_value(rs[0].hyperparameters, cfg.batch_size), **analysis.arms[n]}
                 for n, rs in runs.items()},
        "recommendation": {
            "name": pick, "hyperparameters": every_value(runs[pick][0].hyperparameters, cfg.batch_size),
            "picked_by": "validation",
            "beats_baseline": analysis.beats_baseline, "challenger": challenger,
            "decided_by": ("confirmation" if analysis.confirmation is not None else
                           "race (exploratory)" if analysis.exploratory else None),
            "val_accuracy": analysis.arms[pick]["final_val_accuracy"],
            "test_accuracy": analysis.arms[pick]["test_accuracy"],  # over the race's seeds
            "confirmation": confirmation_json(analysis),
            # The challenger against the baseline on the race's seeds (the selection seeds: optimistic for it).
            "vs_baseline": comparison_columns(analysis.comparisons[challenger]) if challenger else None,
        },
        "searches": [{"name": s.name, "tuner": s.config.tuner, "trials": len(s.trials),
                      "best_trial_id": None if s.best is None else str(s.best["trial_id"]),
                      "best_val_accuracy": None if s.best is None else float(s.best["val_accuracy"]),
                      "command": s.command, **s.cost()} for s in searches],
        "provenance": {"command": invocation.get("command"),
                       "retrainings": len(own), "training_seconds": sum(r.seconds for r in own),
                       "reused": reused_json(every)},
    }


def reused_json(every: list[Run]) -> list[dict[str, Any]]:
    """Runs copied from other reports (--reuse): where from, which machine trained them and when."""
    groups: dict[tuple, dict[str, Any]] = {}
    for r in every:
        if r.reused_from:
            key = (r.reused_from, r.machine)
            g = groups.setdefault(key, {"from": r.reused_from, "machine": r.machine, "runs": 0, "seconds": 0.0,
                                        "ended": []})
            g["runs"] += 1
            g["seconds"] += r.seconds
            g["ended"].append(r.ended_at or 0)
    return [{**{k: v for k, v in g.items() if k != "ended"}, "first_ended": min(g["ended"]) or None,
             "last_ended": max(g["ended"]) or None} for g in groups.values()]


def finite(obj: Any) -> Any:
    """NaN and infinity as null: metrics.json stays strict JSON."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
