"""Rendering a study report: report.md with its figures, tables, metrics.json and config.json.

One function per section of the report, each taking what it shows and returning its Markdown;
`render` strings them together. Every statistic comes from `study.stats`: this module formats.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from study import plots, racing, results, stats, storage
from study.config import (
    BASELINE, NOTEBOOK_TEST_ACCURACY, NOTEBOOK_VAL_ACCURACY, OPTIMIZER_COMPARISON, ReportConfig,
)
from study.records import Run, Search, machines, versions

Runs = dict[str, list[Run]]  # arm name: its runs, one per seed
SAME = "same configuration"  # the verdict of an arm with the baseline's configuration: no comparison


class Writer:
    """Saves figures (PNG) and tables (CSV) into the report folder; returns the Markdown that shows them."""

    def __init__(self, root: Path):
        self.root = root
        (root / "figures").mkdir()
        (root / "tables").mkdir()

    def figure(self, fig, name: str, alt: str) -> str:
        import matplotlib.pyplot as plt

        fig.savefig(self.root / "figures" / f"{name}.png", dpi=100)
        plt.close(fig)
        return f"![{alt}](figures/{name}.png)"

    def table(self, frame: pd.DataFrame, name: str, shown: pd.DataFrame | None = None) -> str:
        frame.to_csv(self.root / "tables" / f"{name}.csv", index=False)
        table = results.markdown_table(frame if shown is None else shown)
        return f"{table}\n\n<sub>[tables/{name}.csv](tables/{name}.csv)</sub>"


def render(root: Path, cfg: ReportConfig, data, searches: list[Search], runs: Runs, analysis: stats.Analysis,
           warnings: list[str], invocation: dict[str, Any] | None = None,
           models: list[dict[str, Any]] | None = None) -> None:
    """Write report.md, figures/, tables/, metrics.json and config.json into `root`.

    `models`: the model files `study.report` exported into `root/models/`, listed in their own section.
    """
    out = Writer(root)
    summary = summary_text(analysis, runs, cfg, len(data.y_test), bool(searches))
    sections = [
        header_section(cfg, data, summary, warnings, runs),
        data_section(data, out),
        baseline_section(runs["baseline"][0], analysis.arms["baseline"], data, cfg, out),
        optimizers_section(runs, analysis, data, cfg, out),
        searches_section(searches, cfg, out),
        final_section(runs, analysis, searches, summary, out, cfg.batch_size),
        models_section(models or [], cfg, data, (invocation or {}).get("command")),
        provenance_section(cfg, searches, runs, invocation or {}),
        runs_section(runs, out),
    ]
    storage.write_text(root / "report.md", "\n\n".join(s for s in sections if s) + "\n")
    storage.write_json(root / "config.json", cfg.to_dict())
    metrics = metrics_json(cfg, data, searches, runs, analysis, summary, warnings, invocation or {})
    metrics["models"] = models or []
    storage.write_json(root / "metrics.json", _finite(metrics))


# --- sections ---------------------------------------------------------------------------------------

def header_section(cfg: ReportConfig, data, summary: str, warnings: list[str], runs: Runs) -> str:
    seeds = ", ".join(map(str, range(cfg.seed, cfg.seed + cfg.seeds)))
    # A configuration with its own batch size (a training hyperparameter) trains with it, not the report's.
    own = any("batch_size" in rs[0].hyperparameters for rs in runs.values())
    batch = f"batch {cfg.batch_size}" + (" unless the configuration sets its own" if own else "")
    md = [
        "# Study report",
        f"**Summary.** {summary}",
        f"Data: {data.describe()}. Every model was trained for {epochs_text(cfg.epochs)} ({batch}, "
        f"no early stopping) with seed{'s' if cfg.seeds > 1 else ''} {seeds}{_racing_rule(cfg)}, and evaluated once "
        "on the test set. "
        "Configuration: [config.json](config.json); every number: [metrics.json](metrics.json); every retraining: "
        "[runs/](runs/).",
        *(f"> **Warning:** {w}" for w in warnings),
    ]
    if cfg.data_from.startswith("search"):
        md.append(f"The data configuration is the one recorded by {cfg.data_from}.")
    return "\n\n".join(md)


def _racing_rule(cfg: ReportConfig) -> str:
    if cfg.min_seeds >= cfg.seeds:
        return ""
    return (f" (racing: from {cfg.min_seeds} seeds on, an arm worse on validation than the best arm racing, beyond "
            f"the noise, or that could not beat the baseline beyond the noise even with {cfg.seeds} seeds, got no "
            "more seeds)")


def data_section(data, out: Writer) -> str:
    names = list(data.class_names)
    splits = {"train": data.y_train, "validation": data.y_val, "test": data.y_test}
    shapes = pd.DataFrame([{"split": k, "images": str((len(v), *data.input_shape)), "labels": str(v.shape)}
                           for k, v in splits.items()])
    counts = pd.DataFrame({k: np.bincount(v, minlength=len(names)) for k, v in splits.items()}, index=names)
    return "\n\n".join([
        "## Data",
        out.figure(plots.sample_images(*data.sample_images(), names), "samples", "sample images"),
        out.table(shapes, "data_shapes"),
        out.table(counts.rename_axis("class").reset_index(), "label_counts"),
        out.figure(plots.label_counts(counts), "label_counts", "images per class and split"),
    ])


def baseline_section(first: Run, summary: dict[str, Any], data, cfg: ReportConfig, out: Writer) -> str:
    """The baseline in detail: curves, test accuracy, per-class report, confusion matrix, examples."""
    whose = "The notebook's model and recipe" if cfg.model is None else f"`{cfg.model['spec']}` at its defaults"
    names = list(data.class_names)
    report, matrix = stats.classification(data.y_test, first.y_pred, names)
    per_class = pd.DataFrame([{"class": k, **v} for k, v in report.items() if isinstance(v, dict)])
    per_class["support"] = per_class["support"].astype(int)
    pd.DataFrame({
        "index": np.arange(len(data.y_test)), "true": data.y_test, "predicted": first.y_pred,
        "true_class": [names[i] for i in data.y_test], "predicted_class": [names[i] for i in first.y_pred],
    }).to_csv(out.root / "predictions.csv", index=False)
    curves = plots.training_curves(first.history, title=f"Baseline (seed {first.seed})")
    grid = plots.prediction_grid(data.x_test, data.y_test, first.y_pred, names, seed=cfg.seed)
    return "\n\n".join([
        "## Baseline",
        f"{whose}: {hp_text(first.hyperparameters)}.",
        out.figure(curves, "baseline_curves", "baseline loss and accuracy"),
        f"**Test accuracy {acc_text(summary)}** (95% interval {interval_text(summary)}), "
        f"test loss {summary['test_loss']:.4f}.",
        f"Classification report (seed {first.seed}; per-image predictions: [predictions.csv](predictions.csv)):",
        out.table(per_class, "classification_report"),
        out.figure(plots.confusion_heatmap(matrix, names), "confusion_matrix", "confusion matrix"),
        out.figure(grid, "predictions", "correct and incorrect test predictions"),
    ])


def optimizers_section(runs: Runs, analysis: stats.Analysis, data, cfg: ReportConfig, out: Writer) -> str:
    """Adam, SGD and RMSprop from the same initial weights and data order, compared in pairs."""
    arms = {o: "baseline" if o == BASELINE.optimizer else o for o in OPTIMIZER_COMPARISON}
    rows = []
    for optimizer, arm in arms.items():
        row = {"optimizer": optimizer, "learning_rate": OPTIMIZER_COMPARISON[optimizer], **analysis.arms[arm]}
        rows.append({**row, **_comparison_columns(analysis.comparisons.get(arm))})
    keys = ["optimizer", "learning_rate", "final_train_accuracy", "final_val_accuracy", "best_val_accuracy",
            "best_epoch", "test_accuracy", "test_accuracy_std", "diff_vs_baseline", "diff_ci_low", "diff_ci_high",
            "p_value", "p_holm", "better", "seconds"]
    frame = pd.DataFrame([{k: r.get(k) for k in keys} for r in rows])
    shown = pd.DataFrame([{
        "optimizer": r["optimizer"], "learning rate": f"{r['learning_rate']:g}",
        "final train accuracy": pct(r["final_train_accuracy"]), "final val accuracy": pct(r["final_val_accuracy"]),
        "best val accuracy": pct(r["best_val_accuracy"]), "epoch of best": f"{r['best_epoch']:g}",
        "test accuracy": acc_text(r), "vs baseline (95% interval)": diff_text(r), "seconds": f"{r['seconds']:.0f}",
    } for r in rows])
    curves = {f"{o} (lr {OPTIMIZER_COMPARISON[o]:g})": {"val_accuracy": list(np.mean(
        [r.history["val_accuracy"] for r in runs[arm]], axis=0))} for o, arm in arms.items()}
    same = not set(arms.values()) & set(differing_initial_weights(runs))
    md = [
        "## Optimizers",
        "Each optimizer at Keras's default learning rate (what `compile(optimizer=\"sgd\")` gives), the "
        "baseline's other hyperparameters, trained from scratch "
        + ("from identical initial weights" if same else "(initial weights DIFFER)")
        + " with the same data order (per seed); Adam is the baseline run. Means over seeds; each optimizer is "
        "compared with Adam seed by seed (" + _method_text(analysis) + ").",
        out.table(frame, "optimizers", shown),
        out.figure(plots.validation_curves(curves), "optimizer_validation", "validation accuracy per optimizer"),
    ]
    if _is_cifar10(data) and cfg.model is None:
        md.append(notebook_text(rows))
    return "\n\n".join(md)


def notebook_text(rows: list[dict[str, Any]]) -> str:
    """The notebook's own figures beside this study's, and why they differ."""
    table = pd.DataFrame([{
        "optimizer": r["optimizer"],
        "notebook: val accuracy at epoch 15": pct(NOTEBOOK_VAL_ACCURACY[r["optimizer"]]),
        "this study: final val accuracy": pct(r["final_val_accuracy"]),
        "notebook: test accuracy": pct(NOTEBOOK_TEST_ACCURACY) if r["optimizer"] == BASELINE.optimizer else "",
        "this study: test accuracy": acc_text(r),
    } for r in rows])
    return "\n\n".join([
        "**Against the notebook.**",  # a Markdown table must start on a line of its own
        results.markdown_table(table),
        "The notebook trained on the official CIFAR-10 pixels; this study reads the same images as JPEG files, "
        "whose compression costs the model a little accuracy. And the notebook's SGD and RMSprop runs continued "
        "training the Adam model's weights, so their validation accuracies measured a fine-tuned Adam model, not "
        "the optimizers: here each optimizer starts from the same initial weights.",
    ])


def searches_section(searches: list[Search], cfg: ReportConfig, out: Writer) -> str:
    md = ["## Searches"]
    if not searches:
        md.append(f"No search was found in `{cfg.directory}`: run `python -m study.search` first, then rerun the "
                  "report (the retrainings above are saved and not repeated).")
        return "\n\n".join(md)
    progress = {s.name: results.best_so_far(s.trials) for s in searches if len(s.trials)}
    if progress:
        md.append(out.figure(plots.best_so_far(progress), "search_progress", "best validation accuracy so far"))
    md.append(cost_text(searches, out))
    md += [search_section(s, out) for s in searches]
    return "\n\n".join(md)


def cost_text(searches: list[Search], out: Writer) -> str:
    """What each search spent: epochs trained against the budget of training every configuration fully."""
    rows = [{"search": s.name, "tuner": s.config.tuner, **s.cost()} for s in searches]
    keys = ["search", "tuner", "trials", "configurations", "epochs_trained", "epochs_budget", "saved",
            "best_val_accuracy", "best_after_trials", "best_after_epochs", "seconds"]
    frame = pd.DataFrame([{k: r[k] for k in keys} for r in rows])
    shown = pd.DataFrame([{
        "search": r["search"], "trials": r["trials"], "configurations": r["configurations"],
        "epochs trained / budget": f"{r['epochs_trained']} / {r['epochs_budget']}", "saved": pct(r["saved"]),
        "best val accuracy": pct(r["best_val_accuracy"]),
        "reached after": f"{r['best_after_trials']} trials, {r['best_after_epochs']} epochs"
        if r["best_after_trials"] else "", "compute": duration_text(r["seconds"]),
    } for r in rows])
    return ("Budget: every configuration a search tried, trained for its full epochs; early stopping and "
            "Hyperband's short rounds train less.\n\n" + out.table(frame, "search_cost", shown))


def search_section(s: Search, out: Writer) -> str:
    slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in s.name)
    c = s.config
    trials = s.trials.drop(columns="error") if (s.trials["error"].fillna("") == "").all() else s.trials
    if "worker" in trials and trials["worker"].nunique(dropna=False) <= 1:  # one process ran every trial
        trials = trials.drop(columns="worker")
    md = [
        f"### {s.name}",
        f"{c.tuner} search, {len(s.trials)} trials of up to {epochs_text(c.epochs)} "
        f"(early stopping {c.early_stopping or 'off'}), seed {c.seed}.",
        out.table(trials, f"trials_{slug}"),
    ]
    if s.best is None:
        md.append("No trial completed: nothing to retrain.")
        return "\n\n".join(md)
    best = str(s.best["trial_id"])
    curves = plots.learning_curves(results.learning_curves(s.folder, s.trials), best_trial_id=best,
                                   title=f"{s.name}: validation accuracy of every trial")
    parallel = plots.parallel_coordinates(results.parallel_coordinates(s.trials), title=f"{s.name}: every trial")
    lr = plots.accuracy_vs_learning_rate(s.trials, title=f"{s.name}: validation accuracy against learning rate")
    md += [
        f"Best by validation accuracy: trial {best} ({pct(s.best['val_accuracy'])}).",
        out.figure(curves, f"learning_curves_{slug}", f"{s.name} learning curves"),
        importance_text(s, slug, out),
        out.figure(parallel, f"parallel_{slug}", f"{s.name} parallel coordinates"),
        out.figure(lr, f"lr_{slug}", f"{s.name} learning rates"),
    ]
    if {"dropout_1", "dropout_2", "dropout_3"} <= set(s.trials.columns):  # the notebook CNN's
        dropout = plots.dropout_effect(s.trials, title=f"{s.name}: effect of each dropout rate")
        md.append(out.figure(dropout, f"dropout_{slug}", f"{s.name} dropouts"))
    return "\n\n".join(md)


def importance_text(s: Search, slug: str, out: Writer) -> str:
    """Which hyperparameters mattered, when the search has enough completed trials to hint at it."""
    result = results.hyperparameter_importance(s.trials)
    if result.importances.empty:
        return (f"Hyperparameter importance needs at least {result.needed} completed trials with more than one "
                f"value of a hyperparameter; this search has {result.n_trials}: not computed.")
    table = result.importances.reset_index()
    shown = table.assign(mean=table["mean"].map("{:.3f}".format), std=table["std"].map("{:.3f}".format))
    return "\n\n".join([
        f"Hyperparameter importance from {result.n_trials} completed trials (permutation importance of a random "
        f"forest fitted to them, out-of-bag R² {result.oob_r2:.2f}): a hint, not a measurement; with a handful "
        "of trials it ranks noise as readily as effects.",
        out.figure(plots.importance(result, title=f"{s.name}: hyperparameter importance"), f"importance_{slug}",
                   f"{s.name} hyperparameter importance"),
        out.table(table, f"importance_{slug}", shown),
    ])


def final_section(runs: Runs, analysis: stats.Analysis, searches: list[Search], summary: str, out: Writer,
                  batch_size: int = BASELINE.batch_size) -> str:
    """Every arm against the baseline, paired, with Holm's correction; the recommendation by validation."""
    rows = comparison_rows(runs, analysis, searches, batch_size)
    # Every arm's hyperparameters: a search's best may name some the baseline does not (a training hyperparameter).
    keys = ["name", *dict.fromkeys(k for r in rows for k in r["hyperparameters"]), "search_val_accuracy",
            "final_val_accuracy", "test_accuracy", "test_accuracy_std", "ci_low", "ci_high", "interval",
            "diff_vs_baseline", "diff_ci_low", "diff_ci_high", "test", "p_value", "p_holm", "better", "pairs",
            "verdict", "dropped_after", "dropped_because"]
    frame = pd.DataFrame([{**r["hyperparameters"], **r} for r in rows])
    frame = frame[[k for k in keys if k in frame]].rename(columns={"name": "configuration"})
    shown = pd.DataFrame([{
        "configuration": ("**" + r["name"] + "**") if r["name"] == analysis.recommended else r["name"],
        "hyperparameters": hp_text(r["hyperparameters"]),
        "val accuracy (search)": pct(r["search_val_accuracy"]),
        "val accuracy (retrained)": pct(r["final_val_accuracy"]),
        "test accuracy (95% interval)": f"{acc_text(r)} ({interval_text(r)})",
        "vs baseline (95% interval)": diff_text(r),
        "p (Holm)": p_text(r), "better in": f"{r['better']} of {r['pairs']}" if r["pairs"] else "",
        "seeds": f"{len(r['seeds'])}, dropped" if r["dropped_after"] is not None else f"{len(r['seeds'])}",
    } for r in rows])
    figure = plots.final_comparison(frame.rename(columns={"configuration": "name"}))
    return "\n\n".join([
        "## Final comparison",
        f"Each configuration against the baseline, {_method_text(analysis)}. {_holm_text(analysis)} "
        + _confirmation_text(analysis) + _racing_text(analysis) + _initial_weights_text(runs),
        out.table(frame, "final_comparison", shown),
        out.figure(figure, "final_comparison", "test accuracy and difference from the baseline, with intervals"),
        f"**Summary.** {summary}",
    ])


def _racing_text(analysis: stats.Analysis) -> str:
    """Which arms the race dropped, and why their numbers rest on fewer seeds."""
    if not _dropped_by_reason(analysis):
        return ""
    return (f" **Dropped by the race:** {_dropped_text(analysis)}. Worse: paired by seed, the seed noise pooled over "
            "the arms, Holm over the arms still racing. Could not beat the baseline: even the optimistic end of "
            "its one-sided 95% interval on validation was below the gain a paired test on every seed finds beyond "
            "the noise half the time. Their numbers are over the seeds they ran, paired with the baseline's same "
            "seeds (docs/racing.md).")


def _dropped_by_reason(analysis: stats.Analysis) -> dict[str, list[str]]:
    """{why: ["sgd after 2 seeds", ...]} of the arms the race dropped, in the arms' order."""
    out: dict[str, list[str]] = {}
    for name, a in analysis.arms.items():
        if a.get("dropped_after") is not None:
            out.setdefault(a["dropped_because"], []).append(f"{name} after {a['dropped_after']} seeds")
    return out


# Why the race dropped an arm, in the report's words.
DROPPED_BECAUSE = {racing.WORSE: "worse on validation than the best arm racing, beyond the noise",
                   racing.CANNOT_BEAT: "could not beat the baseline beyond the noise on validation"}


def _dropped_text(analysis: stats.Analysis) -> str:
    """"worse on validation than the best arm racing, beyond the noise: sgd after 2 seeds; ..." """
    return "; ".join(f"{DROPPED_BECAUSE.get(why, why)}: {', '.join(arms)}"
                     for why, arms in _dropped_by_reason(analysis).items())


def _confirmation_text(analysis: stats.Analysis) -> str:
    """How the recommendation was made: validation picks the challenger, one test on the test set confirms it."""
    text = ("The challenger is the configuration with the best mean validation accuracy of the retrainings; the "
            "test set picks nothing. It replaces the baseline only if its difference from the baseline is positive "
            "and its own paired p-value, uncorrected (one comparison, fixed before the test set was read), is "
            "below 0.05.")
    if analysis.challenger is None:
        return text + " No configuration could challenge the baseline."
    outcome = "it does: it is the recommendation" if analysis.beats_baseline else "it does not: keep the baseline"
    if analysis.arms[analysis.challenger]["dropped_after"] is not None:
        outcome = ("the race dropped it, as every other, before the test set was read (with every challenger "
                   "dropped, the challenger is the best on validation of those it kept longest): keep the baseline")
    return f"{text} The challenger is {analysis.challenger}, and {outcome} (in bold)."


def differing_initial_weights(runs: Runs) -> list[str]:
    """The arms with a run that did not start from the baseline's initial weights of the same seed."""
    start = {r.seed: r.initial_weights for r in runs["baseline"]}
    return [name for name, rs in runs.items() if any(r.initial_weights != start.get(r.seed) for r in rs)]


def _initial_weights_text(runs: Runs) -> str:
    differing = differing_initial_weights(runs)
    if not differing:
        return ""
    zero = any(v == 0 for name in differing
               for k, v in runs[name][0].hyperparameters.items() if k.startswith("dropout"))
    why = (": Keras draws a random seed for each Dropout layer whose rate is above 0, so a rate of 0 shifts the "
           "draws of the layers built after it" if zero else "")
    return (f" **Initial weights differ** from the baseline's of the same seed for {', '.join(differing)}{why}. "
            "Those pairs still share the data order; their differences also carry the effect of other initial "
            "weights, so pairing removes less of the seed-to-seed noise for them.")


def models_section(models: list[dict[str, Any]], cfg: ReportConfig, data, command: str | None = None) -> str:
    """Which model file is which, and how to load one and predict; without any, how to make the one to deploy."""
    if not models:
        final_fit = f"{command or 'python -m study.report'} --final-fit"
        return "\n\n".join([
            "## The answer as model files",
            "This report folder has no model files: they are made from the weights each retraining saves beside "
            "its record in `runs/`, and weights are not committed (`.gitignore`), so a fresh clone has none. "
            f"`{final_fit}` retrains nothing of the report: it trains the recommended configuration once on the "
            "training and validation images together, for the report's epochs, and saves it as "
            "`models/final.keras`, the model to deploy (one retraining's time; the numbers above do not change).",
        ])
    shape = "x".join(map(str, data.input_shape))
    rows = pd.DataFrame([{
        "file": f"[models/{m['file']}](models/{m['file']})", "configuration": m["arm"], "seed": m["seed"],
        "hyperparameters": hp_text(m["hyperparameters"]),
        "test accuracy": pct(m["test_accuracy"]) if m["test_accuracy"] is not None else "not measured",
    } for m in models])
    md = [
        "## The answer as model files",
        "The trained models of the recommendation and of the baseline, one per seed (not committed: "
        "`.gitignore`). Each takes images as the data loader gives them, uint8 of shape "
        f"({shape}), and does the scaling to [0, 1] itself; it outputs the probability of each class "
        f"({', '.join(data.class_names)}).",
        results.markdown_table(rows),
        "```python\nimport keras, numpy as np\n"
        f"model = keras.saving.load_model(\"{cfg.output}/models/{models[0]['file']}\")\n"
        f"images = np.zeros((1, {', '.join(map(str, data.input_shape))}), np.uint8)  # your images here\n"
        "classes = model.predict(images).argmax(axis=1)\n```",
    ]
    if any(m["file"] == "final.keras" for m in models):
        md.append("`final.keras` is the recommended configuration trained once more on the training and "
                  "validation images together (`--final-fit`), for the same epochs: the practice for the model "
                  "to deploy. Nothing was held out from it, so its test accuracy is not measured separately; "
                  "every number of this report comes from the runs trained on the training split.")
    return "\n\n".join(md)


def provenance_section(cfg: ReportConfig, searches: list[Search], runs: Runs, invocation: dict[str, Any]) -> str:
    """The commands, machines, versions and times behind every number, so the report can be checked and rerun."""
    unique = _unique_runs(runs)
    rows = []
    for s in searches:
        cost = s.cost()
        rows.append({"command": f"`{s.command or 'not recorded'}`",
                     "what": f"{s.name}: {cost['trials']} trials, {cost['epochs_trained']} epochs",
                     "compute": duration_text(cost["seconds"]),
                     "wall clock": span_text(cost["started"], cost["ended"])})
    ended = [r.ended_at for r in unique if r.ended_at]
    started = [e - r.seconds for e, r in zip(ended, unique)]
    rows.append({"command": f"`{invocation.get('command') or 'python -m study.report'}`",
                 "what": f"{len(unique)} retrainings of {epochs_text(cfg.epochs)}",
                 "compute": duration_text(sum(r.seconds for r in unique)),
                 "wall clock": span_text(min(started, default=None), max(ended, default=None))})
    environments = [r.environment for r in unique]
    for s in searches:
        environments += [h.get("environment") for h in s.histories().values()]
    return "\n\n".join([
        "## Provenance",
        "The commands behind every number, in order (compute: the trials' and retrainings' own seconds; wall "
        "clock: from the first to the last, in UTC, across sessions when a command was rerun to resume).",
        results.markdown_table(pd.DataFrame(rows)),
        f"Machines: {'; '.join(machines(environments)) or 'not recorded'}. "
        f"Software: {'; '.join(versions(environments)) or 'not recorded'}.",
    ])


def span_text(start: float | None, end: float | None) -> str:
    if not start or not end:
        return "not recorded"
    a, b = (datetime.fromtimestamp(t, timezone.utc) for t in (start, end))
    return f"{a:%Y-%m-%d %H:%M} – {b:%H:%M}" if a.date() == b.date() else f"{a:%Y-%m-%d %H:%M} – {b:%Y-%m-%d %H:%M}"


def runs_section(runs: Runs, out: Writer) -> str:
    rows = [{"configuration": name, **r.hyperparameters, "seed": r.seed, "test_accuracy": r.test_accuracy,
             "test_loss": r.test_loss, "final_val_accuracy": r.final_val_accuracy, "seconds": round(r.seconds, 1),
             "initial_weights_sha1": r.initial_weights} for name, rs in runs.items() for r in rs]
    return "### Every retraining\n\n" + out.table(pd.DataFrame(rows), "runs")


# --- the numbers behind the sections ---------------------------------------------------------------

def comparison_rows(runs: Runs, analysis: stats.Analysis, searches: list[Search],
                    batch_size: int = BASELINE.batch_size) -> list[dict[str, Any]]:
    """One row per arm, the baseline first: its summary, its searches' best score and its comparison."""
    rows = []
    for name, arm_runs in runs.items():
        searched = name not in (analysis.baseline, *OPTIMIZER_COMPARISON)  # the others come from the searches
        hp = arm_runs[0].hyperparameters
        rows.append({
            "name": name, "hyperparameters": hp, **analysis.arms[name],
            "search_val_accuracy": racing.search_score(hp, searches, batch_size) if searched else math.nan,
            **_comparison_columns(analysis.comparisons.get(name), same=name in analysis.comparisons),
        })
    return rows


def _comparison_columns(c: stats.Comparison | None, same: bool = False) -> dict[str, Any]:
    """The comparison as table columns; `same`: an arm with the baseline's configuration, no comparison (null)."""
    if c is None and same:
        return {"test": None, "p_value": None, "p_holm": None, "diff_vs_baseline": None, "diff_ci_low": None,
                "diff_ci_high": None, "better": None, "pairs": None, "verdict": SAME}
    if c is None:  # the baseline itself
        return {"test": "", "p_value": math.nan, "p_holm": math.nan, "diff_vs_baseline": 0.0,
                "diff_ci_low": math.nan, "diff_ci_high": math.nan, "better": 0, "pairs": 0, "verdict": ""}
    return {"test": c.test, "p_value": c.p_value, "p_holm": c.p_holm, "diff_vs_baseline": c.diff,
            "diff_ci_low": c.ci_low, "diff_ci_high": c.ci_high, "better": c.better, "pairs": c.pairs,
            "verdict": stats.verdict(c)}


def metrics_json(cfg, data, searches, runs, analysis, summary, warnings, invocation) -> dict[str, Any]:
    names = list(data.class_names)
    first = runs["baseline"][0]
    report, matrix = stats.classification(data.y_test, first.y_pred, names)
    base = analysis.arms["baseline"]
    pick, challenger = analysis.recommended, analysis.challenger
    return {
        "config": cfg.to_dict(), "class_names": names, "test_size": len(data.y_test), "warnings": warnings,
        "summary": summary,
        "splits": {"train": len(data.y_train), "validation": len(data.y_val), "test": len(data.y_test)},
        "baseline": {"test_accuracy": base["test_accuracy"], "test_loss": base["test_loss"],
                     "classification_report": report, "confusion_matrix": matrix.tolist()},
        "comparison": comparison_rows(runs, analysis, searches, cfg.batch_size),
        "arms": {n: {"hyperparameters": rs[0].hyperparameters, **analysis.arms[n]} for n, rs in runs.items()},
        "recommendation": {
            "name": pick, "hyperparameters": runs[pick][0].hyperparameters, "picked_by": "validation",
            "beats_baseline": analysis.beats_baseline, "challenger": challenger,
            "val_accuracy": analysis.arms[pick]["final_val_accuracy"],
            "test_accuracy": analysis.arms[pick]["test_accuracy"],
            # The confirmatory comparison, the challenger's: its uncorrected p_value decides (one test).
            "vs_baseline": _comparison_columns(analysis.comparisons[challenger]) if challenger else None,
        },
        "searches": [{"name": s.name, "tuner": s.config.tuner, "trials": len(s.trials),
                      "best_trial_id": None if s.best is None else str(s.best["trial_id"]),
                      "best_val_accuracy": None if s.best is None else float(s.best["val_accuracy"]),
                      "command": s.command, **s.cost()} for s in searches],
        # Nothing here depends on how long this rendering took: a re-render gives the same bytes.
        "provenance": {"command": invocation.get("command"),
                       "training_seconds": sum(r.seconds for r in _unique_runs(runs))},
    }


def _unique_runs(runs: Runs) -> list[Run]:
    """Each retraining once: a configuration shared by two arms is one run."""
    unique = {(json.dumps(r.hyperparameters, sort_keys=True), r.seed): r for rs in runs.values() for r in rs}
    return list(unique.values())


def _is_cifar10(data) -> bool:
    from study.data import CIFAR10_CLASSES

    return tuple(data.class_names) == CIFAR10_CLASSES and data.input_shape == (32, 32, 3)


# --- text -------------------------------------------------------------------------------------------

def summary_text(analysis: stats.Analysis, runs: Runs, cfg: ReportConfig, n_test: int, searched: bool) -> str:
    """The answer in plain words: the recommendation (picked by validation, confirmed on test or not), the noise."""
    parts = []
    if not searched:
        parts.append(f"No search was found in `{cfg.directory}`, so this report answers the notebook's own "
                     "question only: the baseline (Adam) against SGD and RMSprop.")
    parts.append(_recommendation_text(analysis, runs, cfg))
    parts.append(_beyond_noise_text(analysis))
    if _dropped_by_reason(analysis):
        parts.append(f"Dropped by the race, {_dropped_text(analysis)}.")
    if cfg.seeds == 1:
        parts.append(f"With one seed the intervals cover only the sampling of the {n_test} test images, not the "
                     "spread between training runs (about a point of test accuracy for the notebook's CNN): run "
                     "`--seeds 5` before trusting a difference of a point or two.")
    if cfg.epochs != BASELINE.epochs:
        parts.append(f"Every model was trained for {epochs_text(cfg.epochs)} instead of the notebook's "
                     f"{BASELINE.epochs}: a quick look.")
    return " ".join(parts)


def _recommendation_text(analysis: stats.Analysis, runs: Runs, cfg: ReportConfig) -> str:
    """The headline: a challenger picked by validation, recommended only if it beats the baseline on test."""
    base, pick = analysis.arms[analysis.baseline], analysis.challenger
    keep = (f"**Keep the baseline** ({hp_text(runs[analysis.baseline][0].hyperparameters)}): test accuracy "
            f"{acc_text(base)} (95% interval {interval_text(base)}).")
    if pick is None:
        return keep + " No other configuration ran every seed with a configuration of its own."
    a, c = analysis.arms[pick], _comparison_columns(analysis.comparisons[pick])
    over = f"over {len(a['seeds'])} seeds" if len(a["seeds"]) > 1 else "(one seed)"
    named = f"{pick} ({hp_text(runs[pick][0].hyperparameters)})"
    picked = (f"the highest mean validation accuracy of the retrainings {over}: {pct(a['final_val_accuracy'])} "
              f"against the baseline's {pct(base['final_val_accuracy'])}")
    test = (f"test accuracy {acc_text(a)} against the baseline's {acc_text(base)}: {diff_text(c)}, p = "
            f"{c['p_value']:.2g} ({c['test']}, the one comparison fixed before the test set was read)")
    beyond = c["p_value"] < stats.ALPHA  # the one comparison: uncorrected
    verdict = _verdict_text("noise" if not beyond else "better" if c["diff_vs_baseline"] > 0 else "worse", c["test"])
    if analysis.beats_baseline:
        return (f"**Recommended: {pick}** ({hp_text(runs[pick][0].hyperparameters)}), picked by validation, "
                f"{picked}; the test set confirms it: {test}, {verdict}.")
    if a["dropped_after"] is not None:
        return (f"{keep} The race dropped every challenger before the test set was read. Of those it kept longest, "
                f"the best on validation is {named}, {pct(a['final_val_accuracy'])} against the baseline's "
                f"{pct(base['final_val_accuracy'])}; dropped after {a['dropped_after']} seeds "
                f"({DROPPED_BECAUSE.get(a['dropped_because'], a['dropped_because'])}), it is not recommended whatever "
                f"the test set says: {test}, {verdict}.")
    return f"{keep} The best challenger by validation, {named}, {picked}, does not beat it on the test set: {test}, " \
        f"{verdict}."


def _beyond_noise_text(analysis: stats.Analysis) -> str:
    verdicts = {n: stats.verdict(c) for n, c in analysis.comparisons.items() if c is not None}
    better = [n for n, v in verdicts.items() if v == "better"]
    worse = [n for n, v in verdicts.items() if v == "worse"]
    diff = {n: f"{n} ({100 * c.diff:+.1f} points)" for n, c in analysis.comparisons.items() if c is not None}
    holm = f" (Holm's correction over the {analysis.family} comparisons)" if analysis.family > 1 else ""
    text = (f"Better than the baseline by more than the noise{holm}: " + ", ".join(diff[n] for n in better) + "."
            if better else f"No configuration beat the baseline by more than the noise{holm}.")
    if worse:
        text += " Worse than the baseline by more than the noise: " + ", ".join(diff[n] for n in worse) + "."
    return text


def _verdict_text(verdict: str, test: str = "paired t") -> str:
    if test in ("McNemar", "paired t, images"):  # the interval covers the test images, not the seeds
        return {"better": "better than the baseline beyond the sampling of the test images (the interval covers "
                          "the test images only, not seed-to-seed variation)",
                "worse": "worse than the baseline beyond the sampling of the test images (the interval covers the "
                         "test images only, not seed-to-seed variation)",
                "noise": "within the sampling noise of the test images: it could be chance"}.get(verdict, "")
    return {"better": "better than the baseline by more than the noise",
            "worse": "worse than the baseline by more than the noise",
            "noise": "within the noise: it could be chance"}.get(verdict, "")


def _method_text(analysis: stats.Analysis) -> str:
    kinds = {c.test for c in analysis.comparisons.values() if c is not None}
    if kinds <= {"McNemar"}:
        return "paired by test image (one seed): McNemar's exact test, and the difference with its 95% interval " \
               "over the test images only (one seed measures no seed-to-seed variation)"
    text = "paired by seed (same initial weights and data order): mean difference of test accuracy with a " \
           "paired Student-t 95% interval and the paired t-test"
    if "paired t, images" in kinds:
        text += ("; where the difference is the same number of test images in every seed, the seeds show no spread "
                 "to test against, so that comparison is paired by test image over the seeds (\"paired t, images\": "
                 "its interval covers the test images only)")
    return text


def _holm_text(analysis: stats.Analysis) -> str:
    tested = [c for c in analysis.comparisons.values() if c is not None]
    if len(tested) < 2:
        return ""
    return (f"The p-values are corrected for the {len(tested)} comparisons with Holm's method (a difference counts "
            "as larger than the noise when its corrected p is below 0.05).")


def epochs_text(n: int) -> str:
    return f"{n} epoch{'s' if n != 1 else ''}"


def duration_text(seconds: float) -> str:
    if not seconds or not math.isfinite(seconds):
        return "–"
    minutes = seconds / 60
    return f"{minutes / 60:.1f} h" if minutes >= 90 else f"{minutes:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def pct(x: float | None) -> str:
    return f"{100 * x:.1f}%" if x is not None and math.isfinite(x) else ""


def acc_text(s: dict[str, Any]) -> str:
    spread = f" ± {100 * s['test_accuracy_std']:.1f}" if math.isfinite(s["test_accuracy_std"]) else ""
    return f"{pct(s['test_accuracy'])}{spread}"


def interval_text(s: dict[str, Any]) -> str:
    return f"{pct(s['ci_low'])} – {pct(s['ci_high'])}, {s['interval']}"


def diff_text(row: dict[str, Any]) -> str:
    """"+1.2 pts (−0.3 to +2.7)"; empty for the baseline, "same configuration" for a shared one."""
    if row.get("verdict") == SAME:
        return SAME
    if not row.get("test"):
        return ""
    if not math.isfinite(row["diff_ci_low"]):
        return f"{100 * row['diff_vs_baseline']:+.1f} pts (interval unknown)"
    return (f"{100 * row['diff_vs_baseline']:+.1f} pts ({100 * row['diff_ci_low']:+.1f} to "
            f"{100 * row['diff_ci_high']:+.1f})")


def p_text(row: dict[str, Any]) -> str:
    if not row.get("test"):
        return ""
    return f"{row['p_holm']:.2g} ({row['test']}; uncorrected {row['p_value']:.2g})"


def hp_text(hp: dict[str, Any]) -> str:
    """"adam, lr 0.001, dropout 0.2/0.3/0.4" for the notebook's CNN; a model's own hyperparameters as name=value."""
    text = f"{hp['optimizer']}, lr {hp['learning_rate']:g}"
    dropouts = [f"dropout_{i}" for i in (1, 2, 3)]
    if all(d in hp for d in dropouts):
        text += f", dropout {'/'.join(f'{hp[d]:g}' for d in dropouts)}"
    others = [k for k in hp if k not in ("optimizer", "learning_rate", *dropouts)]
    return text + "".join(f", {k}={hp[k]:g}" if isinstance(hp[k], float) else f", {k}={hp[k]}" for k in others)


def _finite(obj: Any) -> Any:
    """NaN and infinity as null: metrics.json stays strict JSON."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
