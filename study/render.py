"""Rendering a study report: report.md with its figures, tables, metrics.json and config.json.

One function per section of the report, each taking what it shows and returning its Markdown;
`render` strings them together. Every statistic comes from `study.stats`, the sentences from
`study.wording`, the numbers by name from `study.metrics`: this module lays out tables and figures.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from study import plots, results, stats, storage, wording
from study.config import BASELINE, NOTEBOOK_TEST_ACCURACY, NOTEBOOK_VAL_ACCURACY, ReportConfig
from study.formats import (
    acc_prose, acc_text, count, diff_text, duration_text, epochs_text, hp_text, interval_text, p_text, pct, seeds_text,
    span_text, value_text,
)
from study.metrics import (
    comparison_columns, comparison_rows, complete, finite, hyperparameter_names, metrics_json, unique_runs,
)
from study.records import Run, Search, machines, versions
from study.render_searches import searches_section

Runs = dict[str, list[Run]]  # arm name: its runs, one per seed
Confirmed = tuple[list[Run], list[Run]]  # the baseline's and the challenger's runs on the confirmation seeds


class Writer:
    """Saves figures (PNG) and tables (CSV) into the report folder; returns the Markdown that shows them.

    `figures`: a dict that keeps every figure by name (a notebook shows them); without it each is closed once saved.
    """

    def __init__(self, root: Path, figures: dict | None = None):
        self.root, self.figures = root, figures
        (root / "figures").mkdir()
        (root / "tables").mkdir()

    def figure(self, fig, name: str, alt: str) -> str:
        import matplotlib.pyplot as plt

        fig.savefig(self.root / "figures" / f"{name}.png", dpi=100)
        if self.figures is None:
            plt.close(fig)
        else:
            self.figures[name] = fig
        return f"![{alt}](figures/{name}.png)"

    def table(self, frame: pd.DataFrame, name: str, shown: pd.DataFrame | None = None) -> str:
        frame.to_csv(self.root / "tables" / f"{name}.csv", index=False)
        table = results.markdown_table(frame if shown is None else shown)
        return f"{table}\n\n<sub>[tables/{name}.csv](tables/{name}.csv)</sub>"


def render(root: Path, cfg: ReportConfig, data, searches: list[Search], runs: Runs, analysis: stats.Analysis,
           warnings: list[str], invocation: dict[str, Any] | None = None,
           models: list[dict[str, Any]] | None = None, confirmed: Confirmed | None = None,
           figures: dict | None = None) -> None:
    """Write report.md, figures/, tables/, metrics.json and config.json into `root`.

    `models`: the model files `study.report` exported into `root/models/`, listed in their own section;
    `figures`: filled with every figure by name, kept open.
    """
    out = Writer(root, figures)
    hyperparameters = {name: rs[0].hyperparameters for name, rs in runs.items()}
    summary = wording.summary_text(analysis, hyperparameters, cfg, bool(searches))
    sections = [
        header_section(cfg, data, summary, warnings, runs, searches),
        data_section(data, out),
        baseline_section(runs["baseline"][0], analysis.arms["baseline"], data, cfg, out),
        optimizers_section(runs, analysis, data, cfg, out),
        searches_section(searches, cfg.directory, out),
        final_section(runs, analysis, searches, out, cfg.batch_size),
        confirmation_section(analysis, cfg, out),
        models_section(models or [], cfg, data, (invocation or {}).get("command")),
        provenance_section(cfg, searches, runs, invocation or {}, confirmed),
        runs_section(runs, confirmed, out, cfg.batch_size),
    ]
    storage.write_text(root / "report.md", "\n\n".join(s for s in sections if s) + "\n")
    storage.write_json(root / "config.json", cfg.to_dict())
    metrics = metrics_json(cfg, data, searches, runs, analysis, summary, warnings, invocation or {}, confirmed)
    metrics["models"] = models or []
    storage.write_json(root / "metrics.json", finite(metrics))


# --- sections ---------------------------------------------------------------------------------------

def header_section(cfg: ReportConfig, data, summary: str, warnings: list[str], runs: Runs,
                   searches: list[Search]) -> str:
    # A configuration with its own batch size (a training hyperparameter) trains with it, not the report's.
    own = any("batch_size" in rs[0].hyperparameters for rs in runs.values())
    batch = f"batch {cfg.batch_size}" + (" unless the configuration sets its own" if own else "")
    md = [
        "# Study report",
        f"**Summary.** {summary}",
        f"Data: {data.describe()}. Every model was trained for {epochs_text(cfg.epochs)} ({batch}, no early "
        f"stopping) and evaluated once on the test set. {wording.seeds_sentence(cfg, _search_seeds(searches))}"
        f"{_racing_rule(cfg)} Configuration: [config.json](config.json); every number: [metrics.json](metrics.json); "
        "every retraining: [runs/](runs/).",
        *(f"> **Warning:** {w}" for w in warnings),
    ]
    if cfg.data_from.startswith("search"):
        md.append(f"The data configuration is the one recorded by {cfg.data_from}.")
    return "\n\n".join(md)


def _search_seeds(searches: list[Search]) -> dict[str, int]:
    return {s.name: s.config.seed for s in searches}


def _racing_rule(cfg: ReportConfig) -> str:
    if cfg.min_seeds >= cfg.seeds:
        return ""
    return (f" Racing: from {cfg.min_seeds} seeds on, an arm worse on validation than the best arm racing, beyond "
            f"the noise, or that could not beat the baseline beyond the noise even with {cfg.seeds} seeds, got no "
            "more seeds.")


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
    whose = ("The notebook's model and recipe" if cfg.model is None else f"`{cfg.model['spec']}` at its defaults")
    if cfg.baseline:
        whose = f"{whose}, changed by --baseline {', '.join(f'{k}={v}' for k, v in cfg.baseline.items())}"
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
        f"**Test accuracy {acc_prose(summary)}** over the race's {seeds_text(summary['seeds'])} (95% interval "
        f"of the mean {interval_text(summary)}), test loss {summary['test_loss']:.4f}.",
        f"Classification report (seed {first.seed}; per-image predictions: [predictions.csv](predictions.csv)):",
        out.table(per_class, "classification_report"),
        out.figure(plots.confusion_heatmap(matrix, names), "confusion_matrix", "confusion matrix"),
        out.figure(grid, "predictions", "correct and incorrect test predictions"),
    ])


def optimizer_arms(runs: Runs, compared: tuple[str, ...]) -> dict[str, str]:
    """{arm: its optimizer}: the baseline, then each optimizer arm that ran (named after it: "sgd = grid best")."""
    out = {"baseline": runs["baseline"][0].hyperparameters["optimizer"]}
    for optimizer in compared:
        out.update({name: optimizer for name in runs if name.split(" = ")[0] == optimizer})
    return out


def optimizers_section(runs: Runs, analysis: stats.Analysis, data, cfg: ReportConfig, out: Writer) -> str:
    """The baseline and each optimizer compared, from the same initial weights and data order, in pairs."""
    arms = optimizer_arms(runs, cfg.optimizers_compared)
    if len(arms) == 1:
        return ""
    rows = []
    for arm, optimizer in arms.items():
        row = {"optimizer": optimizer, "learning_rate": runs[arm][0].hyperparameters["learning_rate"],
               **analysis.arms[arm]}
        rows.append({**row, **comparison_columns(analysis.comparisons.get(arm))})
    keys = ["optimizer", "learning_rate", "final_train_accuracy", "final_val_accuracy", "best_val_accuracy",
            "best_epoch", "test_accuracy", "test_accuracy_std", "diff_vs_baseline", "diff_ci_low", "diff_ci_high",
            "p_value", "p_holm", "better", "seconds"]
    frame = pd.DataFrame([{k: r.get(k) for k in keys} for r in rows])
    shown = pd.DataFrame([{
        "optimizer": r["optimizer"] + (" (the baseline)" if i == 0 else ""),
        "learning rate": value_text(r["learning_rate"]),
        "final train accuracy": pct(r["final_train_accuracy"]), "final val accuracy": pct(r["final_val_accuracy"]),
        "best val accuracy": pct(r["best_val_accuracy"]), "epoch of best": f"{r['best_epoch']:g}",
        "test accuracy (mean ± sd over seeds)": f"{acc_text(r)}{_over(r)}",
        "vs baseline (95% interval)": f"{diff_text(r)}{_shared(r)}", "seconds": f"{r['seconds']:.0f}",
    } for i, r in enumerate(rows)])
    curves = {f"{r['optimizer']} (lr {value_text(r['learning_rate'])})": {"val_accuracy": list(np.mean(
        [run.history["val_accuracy"] for run in runs[arm]], axis=0))} for arm, r in zip(arms, rows)}
    same = not set(arms) & set(differing_initial_weights(runs))
    md = [
        "## Optimizers",
        "Each optimizer at Keras's default learning rate (what `compile(optimizer=\"sgd\")` gives), the "
        "baseline's other hyperparameters, trained from scratch "
        + ("from identical initial weights" if same else "(initial weights DIFFER)")
        + f" with the same data order (per seed); the baseline ({hp_text(runs['baseline'][0].hyperparameters)}) is "
        "the first row. Means over the seeds each ran; each optimizer is compared with the baseline seed by seed ("
        + wording.method_text(analysis) + ").",
        out.table(frame, "optimizers", shown),
        out.figure(plots.validation_curves(curves), "optimizer_validation", "validation accuracy per optimizer"),
    ]
    notebooks = cfg.model is None and not cfg.baseline and cfg.compare_optimizers is None
    if _is_cifar10(data) and notebooks:
        md.append(notebook_text(rows))
    return "\n\n".join(md)


def _over(row: dict[str, Any]) -> str:
    """" over 2 seeds" after a dropped arm's mean: it rests on fewer seeds than the others'."""
    return f" over {count(len(row['seeds']), 'seed')}" if row.get("dropped_after") is not None else ""


def _shared(row: dict[str, Any]) -> str:
    """" over 2 shared seeds" after a dropped arm's difference: paired with the baseline's same seeds."""
    return f" over {row['pairs']} shared seeds" if row.get("dropped_after") is not None and row.get("pairs") else ""


def notebook_text(rows: list[dict[str, Any]]) -> str:
    """The notebook's own figures beside this study's, and why they differ."""
    table = pd.DataFrame([{
        "optimizer": r["optimizer"],
        "notebook: val accuracy at epoch 15": pct(NOTEBOOK_VAL_ACCURACY[r["optimizer"]]),
        "this study: final val accuracy": pct(r["final_val_accuracy"]),
        "notebook: test accuracy": pct(NOTEBOOK_TEST_ACCURACY) if r["optimizer"] == BASELINE.optimizer else "",
        "this study: test accuracy (mean ± sd over seeds)": f"{acc_text(r)}{_over(r)}",
    } for r in rows])
    return "\n\n".join([
        "**Against the notebook.**",  # a Markdown table must start on a line of its own
        results.markdown_table(table),
        wording.notebook_prose(),
    ])


def final_section(runs: Runs, analysis: stats.Analysis, searches: list[Search], out: Writer,
                  batch_size: int = BASELINE.batch_size) -> str:
    """Every arm against the baseline on the race's seeds, paired, with Holm's correction."""
    rows = comparison_rows(runs, analysis, searches, batch_size)
    names = list(rows[0]["trains_with"]) if rows else []
    keys = ["name", *names, "search_val_accuracy", "final_val_accuracy", "test_accuracy", "test_accuracy_std",
            "ci_low", "ci_high", "interval", "diff_vs_baseline", "diff_ci_low", "diff_ci_high", "test", "p_value",
            "p_holm", "better", "pairs", "verdict", "dropped_after", "dropped_because"]
    frame = pd.DataFrame([{**r["trains_with"], **{k: v for k, v in r.items() if k not in names}} for r in rows])
    frame = frame[[k for k in keys if k in frame]].rename(columns={"name": "configuration"})
    shown = pd.DataFrame([{
        "configuration": ("**" + r["name"] + "**") if r["name"] == analysis.recommended else r["name"],
        "hyperparameters": hp_text(r["trains_with"]),
        "val accuracy (search)": pct(r["search_val_accuracy"]),
        "val accuracy (race)": pct(r["final_val_accuracy"]),
        "test accuracy, mean ± sd over seeds (95% interval)": f"{acc_text(r)}{_over(r)} ({interval_text(r)})",
        "vs baseline (95% interval)": f"{diff_text(r)}{_shared(r)}",
        "p (Holm)": p_text(r), "better in": f"{r['better']} of {r['pairs']}" if r["pairs"] else "",
        "seeds": f"{len(r['seeds'])}, dropped" if r["dropped_after"] is not None else f"{len(r['seeds'])}",
    } for r in rows])
    figure = plots.final_comparison(frame.rename(columns={"configuration": "name"}))
    return "\n\n".join([
        "## Final comparison",
        f"Each configuration against the baseline on the race's seeds, {wording.method_text(analysis)}. "
        f"{wording.holm_text(analysis)} {wording.beyond_noise_text(analysis)} {wording.selection_text()} "
        + wording.racing_text(analysis) + wording.initial_weights_text(differing_initial_weights(runs)),
        out.table(frame, "final_comparison", shown),
        out.figure(figure, "final_comparison", "test accuracy and difference from the baseline, with intervals"),
    ])


def confirmation_section(analysis: stats.Analysis, cfg: ReportConfig, out: Writer) -> str:
    """The decision: the challenger and the baseline on the confirmation seeds, seed by seed."""
    md = ["## Confirmation", wording.decision_text(analysis, cfg)]
    c = analysis.confirmation
    if c is not None:
        rows = pd.DataFrame({"seed": list(c.seeds), "baseline test accuracy": list(c.baseline_test),
                             "challenger test accuracy": list(c.challenger_test),
                             "difference": np.subtract(c.challenger_test, c.baseline_test)})
        shown = rows.assign(**{k: rows[k].map(pct) for k in ("baseline test accuracy", "challenger test accuracy")},
                            difference=rows["difference"].map(lambda d: f"{100 * d:+.1f} pts"))
        evidence = wording.comparison_prose(c.comparison, c.challenger_test, c.baseline_test)
        md += [out.table(rows, "confirmation", shown),
               f"{analysis.challenger} against the baseline: {evidence}: {wording.verdict_words(c.comparison)}. "
               f"Each seed's pair trained on one machine ({c.machine or 'not recorded'})."]
    return "\n\n".join(md)


def differing_initial_weights(runs: Runs) -> list[str]:
    """The arms with a run that did not start from the baseline's initial weights of the same seed."""
    start = {r.seed: r.initial_weights for r in runs["baseline"]}
    return [name for name, rs in runs.items() if any(r.initial_weights != start.get(r.seed) for r in rs)]


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


def provenance_section(cfg: ReportConfig, searches: list[Search], runs: Runs, invocation: dict[str, Any],
                       confirmed: Confirmed | None = None) -> str:
    """The commands, machines, versions and times behind every number, so the report can be checked and rerun.

    Runs reused from another report (--reuse) are listed apart, with their machine and dates: their compute
    is that report's, not this one's.
    """
    every = unique_runs({**runs, "confirmation": [r for side in (confirmed or ()) for r in side]})
    own = [r for r in every if not r.reused_from]
    rows = []
    for s in searches:
        cost = s.cost()
        rows.append({"command": f"`{s.command or 'not recorded'}`",
                     "what": f"{s.name}: {count(cost['trials'], 'trial')}, {count(cost['epochs_trained'], 'epoch')}",
                     "compute": duration_text(cost["seconds"]),
                     "wall clock": span_text(cost["started"], cost["ended"])})
    rows.append({"command": f"`{invocation.get('command') or 'python -m study.report'}`",
                 "what": f"{count(len(own), 'retraining')} of {epochs_text(cfg.epochs)}",
                 "compute": duration_text(sum(r.seconds for r in own)), "wall clock": _wall_clock(own)})
    reused: dict[str, list[Run]] = {}
    for r in every:
        if r.reused_from:
            reused.setdefault(r.reused_from, []).append(r)
    for origin, rs in reused.items():
        rows.append({"command": f"reused from `{origin}` (--reuse)",
                     "what": f"{count(len(rs), 'retraining')}, on {'; '.join(machines(r.environment for r in rs))}",
                     "compute": f"{duration_text(sum(r.seconds for r in rs))} (that report's)",
                     "wall clock": _wall_clock(rs)})
    environments = [r.environment for r in every]
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


def _wall_clock(runs: list[Run]) -> str:
    ended = [r.ended_at for r in runs if r.ended_at]
    started = [r.ended_at - r.seconds for r in runs if r.ended_at]
    return span_text(min(started, default=None), max(ended, default=None))


def runs_section(runs: Runs, confirmed: Confirmed | None, out: Writer, batch_size: int) -> str:
    """Every retraining, the race's and the confirmation's, with the hyperparameters each trained with."""
    names = hyperparameter_names(runs)
    listed = [(name, "race", r) for name, rs in runs.items() for r in rs]
    if confirmed:
        challenger = next(n for n, rs in runs.items() if rs[0].hyperparameters == confirmed[1][0].hyperparameters)
        listed += [(name, "confirmation", r) for name, side in (("baseline", confirmed[0]), (challenger, confirmed[1]))
                   for r in side]
    rows = [{"configuration": name, "seeds for": role, **complete(r.hyperparameters, names, batch_size),
             "seed": r.seed, "test_accuracy": r.test_accuracy, "test_loss": r.test_loss,
             "final_val_accuracy": r.final_val_accuracy, "seconds": round(r.seconds, 1),
             "initial_weights_sha1": r.initial_weights, "reused_from": r.reused_from or ""}
            for name, role, r in listed]
    return "### Every retraining\n\n" + out.table(pd.DataFrame(rows), "runs")


def _is_cifar10(data) -> bool:
    from study.data import CIFAR10_CLASSES

    return tuple(data.class_names) == CIFAR10_CLASSES and data.input_shape == (32, 32, 3)
