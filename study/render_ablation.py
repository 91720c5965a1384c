"""Rendering an ablation: ablation.md with its tables and figures, and ablation.json, from `study.ablation.analyse`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from study import ablation_plots, storage, wording
from study.formats import count, duration_text, hp_text, is_finite, pct, seeds_text, value_text
from study.metrics import finite
from study.render import Writer


def change_text(change: dict[str, list]) -> str:
    """"batch_size 64 → 32", "dropout 0.2/0.3/0.4 → 0.1/0.4/0.2" for a group."""
    names = list(change)
    if len(names) > 1 and all(n.startswith("dropout_") for n in names):
        before = "/".join(value_text(change[n][0]) for n in names)
        after = "/".join(value_text(change[n][1]) for n in names)
        return f"dropout {before} → {after}"
    return ", ".join(f"{n} {value_text(a)} → {value_text(b)}" for n, (a, b) in change.items())


def diff_cell(d: dict[str, Any]) -> str:
    """"+2.1 pts (+1.3 to +2.9)", the 95% interval of a paired difference."""
    if not is_finite(d["ci_low"]):
        return f"{100 * d['mean']:+.1f} pts (interval unknown)"
    return f"{100 * d['mean']:+.1f} pts ({100 * d['ci_low']:+.1f} to {100 * d['ci_high']:+.1f})"


def p_cell(d: dict[str, Any]) -> str:
    holm = d.get("p_holm")
    if not is_finite(holm):
        return f"{d['p_value']:.2g}"
    return f"{holm:.2g} (Holm; uncorrected {d['p_value']:.2g})"


def acc_cell(e: dict[str, Any], key: str = "test_accuracy") -> str:
    return f"{pct(e[key])} ± {100 * e[key + '_std']:.1f}"


def one_at_a_time_table(numbers: dict[str, Any], out: Writer) -> str:
    added = {e["component"]: e for e in numbers["one_at_a_time"]["added"]}
    removed = {e["component"]: e for e in numbers["one_at_a_time"]["removed"]}
    rows, shown = [], []
    for c, change in numbers["components"].items():
        a, r = added[c], removed[c]
        rows.append({"component": c, "change": change_text(change), "added_test_accuracy": a["test_accuracy"],
                     "added_diff_vs_source": a["diff_vs_source"]["mean"], "added_ci_low": a["diff_vs_source"]["ci_low"],
                     "added_ci_high": a["diff_vs_source"]["ci_high"], "added_p_holm": a["diff_vs_source"]["p_holm"],
                     "removed_test_accuracy": r["test_accuracy"], "removed_diff_vs_target": r["diff_vs_target"]["mean"],
                     "removed_ci_low": r["diff_vs_target"]["ci_low"], "removed_ci_high": r["diff_vs_target"]["ci_high"],
                     "removed_p_holm": r["diff_vs_target"]["p_holm"], "interaction": a["interaction"]["mean"],
                     "interaction_ci_low": a["interaction"]["ci_low"],
                     "interaction_ci_high": a["interaction"]["ci_high"],
                     "interaction_p_holm": a["interaction"]["p_holm"], "added_seconds": a["seconds"],
                     "removed_seconds": r["seconds"]})
        shown.append({"component": c, "change": change_text(change),
                      "source + it: test (mean ± sd)": acc_cell(a), "vs source (95%)": diff_cell(a["diff_vs_source"]),
                      "p": p_cell(a["diff_vs_source"]), "target − it: test (mean ± sd)": acc_cell(r),
                      "vs target (95%)": diff_cell(r["diff_vs_target"]), "p ": p_cell(r["diff_vs_target"]),
                      "interaction (95%)": diff_cell(a["interaction"]), "p  ": p_cell(a["interaction"]),
                      "seconds (+ / −)": f"{a['seconds']:.0f} / {r['seconds']:.0f}"})
    return out.table(pd.DataFrame(rows), "one_at_a_time", pd.DataFrame(shown))


def path_table(numbers: dict[str, Any], out: Writer) -> str:
    rows, shown = [], []
    for i, e in enumerate(numbers["path"], 1):
        share = e["share_of_total"]
        rows.append({"step": i, "component": e["component"], **{f"hp_{k}": v for k, v in e["hyperparameters"].items()},
                     "val_accuracy": e["val_accuracy"], "test_accuracy": e["test_accuracy"],
                     "test_accuracy_std": e["test_accuracy_std"], "diff_vs_previous": e["diff_vs_previous"]["mean"],
                     "diff_vs_previous_ci_low": e["diff_vs_previous"]["ci_low"],
                     "diff_vs_previous_ci_high": e["diff_vs_previous"]["ci_high"],
                     "diff_vs_source": e["diff_vs_source"]["mean"], "share_of_total": share, "seconds": e["seconds"]})
        shown.append({"step": i, "adds": f"{e['component']} ({change_text(numbers['components'][e['component']])})",
                      "val accuracy (mean ± sd)": acc_cell(e, "val_accuracy"),
                      "test accuracy (mean ± sd)": acc_cell(e),
                      "vs previous (95%)": diff_cell(e["diff_vs_previous"]),
                      "vs source (95%)": diff_cell(e["diff_vs_source"]),
                      "share of the total gain": "" if share is None else f"{100 * share:.0f}%",
                      "seconds": f"{e['seconds']:.0f}"})
    return out.table(pd.DataFrame(rows), "path", pd.DataFrame(shown))


def render(root: Path, numbers: dict[str, Any], cfg, command: str, runs: list, figures: dict | None = None) -> None:
    """Write ablation.md, ablation.json, config.json, figures/ and tables/ into `root`."""
    out = Writer(root, figures)
    comps = list(numbers["components"])
    added = {e["component"]: e for e in numbers["one_at_a_time"]["added"]}
    removed = {e["component"]: e for e in numbers["one_at_a_time"]["removed"]}
    views = {"added to the source": tuple([100 * added[c]["diff_vs_source"][k] for c in comps]
                                          for k in ("mean", "ci_low", "ci_high")),
             "removed from the target (target − it)": tuple([100 * removed[c]["diff_vs_target"][k] for c in comps]
                                                             for k in ("mean", "ci_low", "ci_high"))}
    path = numbers["path"]
    fall = ablation_plots.waterfall([e["component"] for e in path],
                                    [100 * e["diff_vs_previous"]["mean"] for e in path],
                                    [100 * e["diff_vs_previous"]["ci_low"] for e in path],
                                    [100 * e["diff_vs_previous"]["ci_high"] for e in path],
                                    start=100 * numbers["source_runs"]["test_accuracy"])
    src, tgt = numbers["source_runs"], numbers["target_runs"]
    md = [
        "# Ablation",
        f"**Answer.** {wording.ablation_answer(numbers)}",
        f"From the source ({hp_text(numbers['source'])}{_arm(numbers['source_arm'])}) to the target "
        f"({hp_text(numbers['target'])}{_arm(numbers['target_arm'])}): {count(len(comps), 'component')}, "
        + "; ".join(f"**{c}**: {change_text(ch)}" for c, ch in numbers["components"].items()) + ". "
        f"Every configuration trained on the same {seeds_text(numbers['seeds'])}: {wording.ablation_seeds_text()} "
        f"Source {acc_cell(src)}, target {acc_cell(tgt)} test accuracy (mean ± sd over seeds): "
        f"{diff_cell(numbers['total'])}, p = {numbers['total']['p_value']:.2g} (paired t). Report: "
        f"`{cfg.report}`; configuration: [config.json](config.json); every number: [ablation.json](ablation.json).",
        "## One change at a time",
        wording.one_at_a_time_text(),
        one_at_a_time_table(numbers, out),
        out.figure(ablation_plots.differences(comps, views), "one_at_a_time",
                   "each component's difference, with intervals"),
        "## The path",
        wording.path_text(),
        path_table(numbers, out),
        out.figure(fall, "path", "the ablation path as a waterfall, with intervals"),
        "## Provenance",
        _provenance(numbers, command),
        "### Every retraining",
        out.table(pd.DataFrame([{"configuration": config_name, **r.hyperparameters, "seed": r.seed,
                                 "val_accuracy": r.final_val_accuracy, "test_accuracy": r.test_accuracy,
                                 "seconds": round(r.seconds, 1), "initial_weights_sha1": r.initial_weights,
                                 "reused_from": r.reused_from or ""} for config_name, r in runs]), "runs"),
    ]
    storage.write_text(root / "ablation.md", "\n\n".join(md) + "\n")
    storage.write_json(root / "ablation.json", finite(numbers))
    storage.write_json(root / "config.json", cfg.to_dict())


def _arm(name: str | None) -> str:
    return f"; the report's {name}" if name else ""


def _provenance(numbers: dict[str, Any], command: str) -> str:
    c = numbers["compute"]
    return (f"`{command}`: {count(c['configurations'], 'configuration')}, {count(c['retrainings'], 'retraining')} "
            f"({c['reused']} reused from the report, their compute the report's), "
            f"{duration_text(c['training_seconds'])} of training; the path's new configurations took "
            f"{c['path_new_retrainings']} retrainings with racing, against {c['path_new_retrainings_without_racing']} "
            f"without. Machines: {'; '.join(c['machines']) or 'not recorded'}.")


def console_text(numbers: dict[str, Any]) -> str:
    """The same numbers, short, for the end of the command."""
    lines = [f"ablation: {wording.ablation_answer(numbers)}"]
    for e in numbers["one_at_a_time"]["added"]:
        r = next(x for x in numbers["one_at_a_time"]["removed"] if x["component"] == e["component"])
        lines.append(f"  {e['component']:28s} added {diff_cell(e['diff_vs_source'])}, removed "
                     f"{diff_cell(r['diff_vs_target'])}, interaction {diff_cell(e['interaction'])}")
    lines.append("  path: " + " → ".join(f"{e['component']} ({100 * e['diff_vs_previous']['mean']:+.1f})"
                                         for e in numbers["path"]))
    return "\n".join(lines)

