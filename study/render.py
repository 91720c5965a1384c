"""Rendering a study report: report.md with its figures, tables, metrics.json and config.json.

`study.report` trains and evaluates; this module turns those runs into the report, and its
statistics (intervals, paired tests) into a plain-language summary.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from study.config import BASELINE, OPTIMIZER_COMPARISON

if TYPE_CHECKING:
    from study.report import ReportConfig, Run, Search


class _Writer:
    """Saves figures (PNG) and tables (CSV) into the report folder; returns the markdown that shows them."""

    def __init__(self, root: Path):
        self.root = root
        (root / "figures").mkdir()
        (root / "tables").mkdir()

    def figure(self, fig, name: str, alt: str) -> str:
        import matplotlib.pyplot as plt

        fig.savefig(self.root / "figures" / f"{name}.png", dpi=100)
        plt.close(fig)
        return f"![{alt}](figures/{name}.png)"

    def table(self, frame, name: str, shown=None) -> str:
        from study.results import markdown_table

        frame.to_csv(self.root / "tables" / f"{name}.csv", index=False)
        table = markdown_table(frame if shown is None else shown)
        return f"{table}\n\n<sub>[tables/{name}.csv](tables/{name}.csv)</sub>"


def summarize(runs: list[Run], n_test: int) -> dict[str, Any]:
    """Means over seeds, and a 95% interval of test accuracy: Wilson for one seed, Student-t over seeds."""
    from study.stats import mean_interval, wilson_interval

    acc = [r.test_accuracy for r in runs]
    if len(runs) == 1:
        (low, high), kind, std = wilson_interval(round(acc[0] * n_test), n_test), "Wilson", float("nan")
    else:
        (low, high), kind, std = mean_interval(acc), "t", float(np.std(acc, ddof=1))
    val = [r.history["val_accuracy"] for r in runs]
    return {
        "test_accuracy": float(np.mean(acc)), "test_accuracy_std": std, "ci_low": low, "ci_high": high,
        "interval": kind, "test_loss": float(np.mean([r.test_loss for r in runs])),
        "final_train_accuracy": float(np.mean([r.history["accuracy"][-1] for r in runs])),
        "final_val_accuracy": float(np.mean([v[-1] for v in val])),
        "best_val_accuracy": float(np.mean([max(v) for v in val])),
        "best_epoch": float(np.mean([int(np.argmax(v)) + 1 for v in val])),
        "seconds": float(np.mean([r.seconds for r in runs])),
        "seeds": [r.seed for r in runs], "test_accuracies": acc,
    }  # fmt: skip


def compare(base: list[Run], other: list[Run], y_test: np.ndarray) -> tuple[str, float]:
    """(test, p-value) for "other differs from base": McNemar's exact test on the paired test
    predictions for one seed, Welch's t-test over seeds for several."""
    from scipy.stats import binomtest, ttest_ind

    if all(a is b for a, b in zip(base, other)):
        return "same run", 1.0
    if len(base) == 1:
        right_b, right_o = base[0].y_pred == y_test, other[0].y_pred == y_test
        only_b, only_o = int(np.sum(right_b & ~right_o)), int(np.sum(right_o & ~right_b))
        p = binomtest(min(only_b, only_o), only_b + only_o, 0.5).pvalue if only_b + only_o else 1.0
        return "McNemar", float(p)
    p = ttest_ind([r.test_accuracy for r in other], [r.test_accuracy for r in base], equal_var=False).pvalue
    return "Welch t", float(p) if np.isfinite(p) else 1.0


def epochs_text(n: int) -> str:
    return f"{n} epoch{'s' if n != 1 else ''}"


def minutes_text(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f}s"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _acc(s: dict[str, Any]) -> str:
    spread = f" ± {100 * s['test_accuracy_std']:.1f}" if np.isfinite(s["test_accuracy_std"]) else ""
    return f"{_pct(s['test_accuracy'])}{spread}"


def _interval(s: dict[str, Any]) -> str:
    return f"{_pct(s['ci_low'])} – {_pct(s['ci_high'])} ({s['interval']})"


def _hp(hp: dict[str, Any]) -> str:
    return f"{hp['optimizer']}, lr {hp['learning_rate']:g}, dropout {hp['dropout_1']:g}/{hp['dropout_2']:g}/{hp['dropout_3']:g}"


def summary_text(rows: list[dict[str, Any]], cfg: ReportConfig, n_test: int, searched: bool) -> str:
    """Plain-language answer from the final comparison rows (the first is the baseline)."""
    base = rows[0]
    noise = (f"the 95% intervals only cover the sampling of the {n_test} test images, not the spread between "
             f"training runs (`--seeds 3` measures that)" if cfg.seeds == 1
             else f"means over {cfg.seeds} seeds with Student-t intervals")  # fmt: skip
    if not searched:
        return (f"No search was found, so only the baseline was evaluated: {_acc(base)} test accuracy "
                f"(95% interval {_interval(base)}); {noise}.")  # fmt: skip
    winner = max(rows, key=lambda r: r["test_accuracy"])
    if winner["test_accuracy"] > base["test_accuracy"]:
        text = (f"**{winner['name']}** ({_hp(winner['hyperparameters'])}) won with {_acc(winner)} test accuracy, "
                f"{100 * (winner['test_accuracy'] - base['test_accuracy']):+.1f} points against the baseline's "
                f"{_acc(base)}")  # fmt: skip
        other = winner
    else:
        text = (f"No search's best configuration beat the notebook's baseline ({_hp(base['hyperparameters'])}, "
                f"{_acc(base)} test accuracy).")  # fmt: skip
        same = [r["name"] for r in rows[1:] if r["hyperparameters"] == base["hyperparameters"]]
        if same:
            text += f" {' and '.join(same)} {'is' if len(same) == 1 else 'are'} the baseline's own configuration."
        different = [r for r in rows[1:] if r["hyperparameters"] != base["hyperparameters"]]
        if not different:
            return f"{text} Note that {noise}." + _epochs_note(cfg)
        other = max(different, key=lambda r: r["test_accuracy"])
        text += (f" The best other configuration, {other['name']} ({_hp(other['hyperparameters'])}), reached "
                 f"{_acc(other)}, {100 * (other['test_accuracy'] - base['test_accuracy']):+.1f} points")  # fmt: skip
    significant = other["p_value"] < 0.05
    text += (f" ({other['test']} test, p = {other['p_value']:.2g}: the difference is "
             f"{'larger than the noise' if significant else 'within the noise and could be chance'}). Note that {noise}.")
    return text + _epochs_note(cfg)


def _epochs_note(cfg: ReportConfig) -> str:
    if cfg.epochs == BASELINE.epochs:
        return ""
    return f" Every model was trained for {epochs_text(cfg.epochs)} instead of the notebook's {BASELINE.epochs}: a quick look."


def render(root: Path, cfg: ReportConfig, data, searches: list[Search], runs: dict[str, list[Run]], warnings: list[str]) -> None:
    """Write report.md, figures/, tables/, metrics.json and config.json into `root`."""
    import pandas as pd
    from sklearn.metrics import classification_report, confusion_matrix

    from study import plots, results, storage

    out, names, n_test = _Writer(root), list(data.class_names), len(data.y_test)
    stats = {name: summarize(rs, n_test) for name, rs in runs.items()}
    md = [f"# Study report\n\nData: {data.describe()}. Every model was trained for {epochs_text(cfg.epochs)} "
          f"(batch {cfg.batch_size}, no early stopping) with seeds {stats['baseline']['seeds']}, and evaluated "
          "once on the test set. Configuration: [config.json](config.json); every number: [metrics.json](metrics.json)."]
    md += [f"> **Warning:** {w}" for w in warnings]
    if cfg.data_from.startswith("search"):
        md.append(f"The data configuration is the one recorded by {cfg.data_from}.")

    # Data
    splits = {"train": data.y_train, "validation": data.y_val, "test": data.y_test}
    images = {"train": data.x_train, "validation": data.x_val, "test": data.x_test}
    shapes = pd.DataFrame([{"split": k, "images": str(images[k].shape), "labels": str(v.shape)} for k, v in splits.items()])
    counts = pd.DataFrame({k: np.bincount(v, minlength=len(names)) for k, v in splits.items()}, index=names)
    md += ["## Data", out.figure(plots.sample_images(data.x_train, data.y_train, names), "samples", "sample images"),
           out.table(shapes, "data_shapes"), out.table(counts.rename_axis("class").reset_index(), "label_counts"),
           out.figure(plots.label_counts(counts), "label_counts", "images per class and split")]  # fmt: skip

    # Baseline: the details come from its first seed
    first = runs["baseline"][0]
    b = stats["baseline"]
    report = classification_report(data.y_test, first.y_pred, labels=range(len(names)), target_names=names,
                                   output_dict=True, zero_division=0)  # fmt: skip
    cls = pd.DataFrame([{"class": k, **v} for k, v in report.items() if isinstance(v, dict)])
    cls["support"] = cls["support"].astype(int)
    matrix = confusion_matrix(data.y_test, first.y_pred, labels=range(len(names)))
    pd.DataFrame({"index": np.arange(n_test), "true": data.y_test, "predicted": first.y_pred,
                  "true_class": [names[i] for i in data.y_test], "predicted_class": [names[i] for i in first.y_pred]}
                 ).to_csv(root / "predictions.csv", index=False)  # fmt: skip
    md += ["## Baseline", f"The notebook's model and recipe: {_hp(first.hyperparameters)}.",
           out.figure(plots.training_curves(first.history, title=f"Baseline (seed {first.seed})"), "baseline_curves", "baseline loss and accuracy"),
           f"**Test accuracy {_acc(b)}** (95% interval {_interval(b)}), test loss {b['test_loss']:.4f}.",
           f"Classification report (seed {first.seed}; per-image predictions: [predictions.csv](predictions.csv)):",
           out.table(cls, "classification_report"),
           out.figure(plots.confusion_heatmap(matrix, names), "confusion_matrix", "confusion matrix"),
           out.figure(plots.prediction_grid(data.x_test, data.y_test, first.y_pred, names, seed=cfg.seed), "predictions", "correct and incorrect test predictions")]  # fmt: skip

    # Optimizers: same initial weights and data order per seed
    opt = [{"optimizer": o, "learning_rate": lr, **stats["baseline" if o == BASELINE.optimizer else o]}
           for o, lr in OPTIMIZER_COMPARISON.items()]  # fmt: skip
    keys = ["final_train_accuracy", "final_val_accuracy", "best_val_accuracy", "best_epoch", "test_accuracy", "test_accuracy_std", "seconds"]
    opt_frame = pd.DataFrame([{k: r[k] for k in ["optimizer", "learning_rate", *keys]} for r in opt])
    shown = pd.DataFrame([{"optimizer": r["optimizer"], "learning rate": f"{r['learning_rate']:g}",
                           "final train accuracy": _pct(r["final_train_accuracy"]), "final val accuracy": _pct(r["final_val_accuracy"]),
                           "best val accuracy": _pct(r["best_val_accuracy"]), "epoch of best": f"{r['best_epoch']:g}",
                           "test accuracy": _acc(r), "seconds": f"{r['seconds']:.0f}"} for r in opt])  # fmt: skip
    curves = {f"{o} (lr {lr:g})": {"val_accuracy": list(np.mean([r.history["val_accuracy"] for r in runs["baseline" if o == BASELINE.optimizer else o]], axis=0))}
              for o, lr in OPTIMIZER_COMPARISON.items()}  # fmt: skip
    same = all(len({runs[n][i].initial_weights for n in ("baseline", "sgd", "rmsprop")}) == 1 for i in range(cfg.seeds))
    md += ["## Optimizers", "Each optimizer at Keras's default learning rate (what `compile(optimizer=\"sgd\")` gives), the "
           "baseline's dropouts, trained from scratch " + ("from identical initial weights" if same else "(initial weights DIFFER)")
           + " with the same data order (per seed); Adam is the baseline run. Means over seeds.",
           out.table(opt_frame, "optimizers", shown), out.figure(plots.validation_curves(curves), "optimizer_validation", "validation accuracy per optimizer")]  # fmt: skip

    # Searches
    md.append("## Searches")
    if not searches:
        md.append(f"No search was found in `{cfg.directory}`: run `python -m study.search` first, then rerun the report.")
    else:
        progress = {s.name: results.best_so_far(s.trials) for s in searches if len(s.trials)}
        if progress:
            md.append(out.figure(plots.best_so_far(progress), "search_progress", "best validation accuracy so far per search"))
        for s in searches:
            slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in s.name)
            c = s.config
            md.append(f"### {s.name}\n\n{c.tuner} search, {len(s.trials)} trials of up to {epochs_text(c.epochs)} "
                      f"(early stopping {c.early_stopping or 'off'}), seed {c.seed}.")  # fmt: skip
            trials = s.trials.drop(columns="error") if (s.trials["error"].fillna("") == "").all() else s.trials
            md.append(out.table(trials, f"trials_{slug}"))
            if s.best is None:
                md.append("No trial completed: nothing to retrain.")
                continue
            md += [f"Best by validation accuracy: trial {s.best['trial_id']} ({_pct(s.best['val_accuracy'])}).",
                   out.figure(plots.accuracy_vs_learning_rate(s.trials, title=f"{s.name}: validation accuracy against learning rate"), f"lr_{slug}", f"{s.name} learning rates"),
                   out.figure(plots.dropout_effect(s.trials, title=f"{s.name}: effect of each dropout rate"), f"dropout_{slug}", f"{s.name} dropouts")]  # fmt: skip

    # Final comparison
    rows = []
    for name in ["baseline", *(f"{s.name} best" for s in searches if s.best is not None)]:
        test, p = compare(runs["baseline"], runs[name], data.y_test) if name != "baseline" else ("", float("nan"))
        search = next((s for s in searches if f"{s.name} best" == name), None)
        rows.append({"name": name, "hyperparameters": runs[name][0].hyperparameters, **stats[name], "test": test, "p_value": p,
                     "search_val_accuracy": float(search.best["val_accuracy"]) if search else float("nan"),
                     "diff_vs_baseline": stats[name]["test_accuracy"] - b["test_accuracy"]})  # fmt: skip
    final = pd.DataFrame([{"configuration": r["name"], **r["hyperparameters"], **{k: r[k] for k in (
        "search_val_accuracy", "test_accuracy", "test_accuracy_std", "ci_low", "ci_high", "interval", "diff_vs_baseline", "test", "p_value")}}
        for r in rows])  # fmt: skip
    shown = pd.DataFrame([{"configuration": r["name"], "hyperparameters": _hp(r["hyperparameters"]),
                           "val accuracy (search)": _pct(r["search_val_accuracy"]) if np.isfinite(r["search_val_accuracy"]) else "",
                           "test accuracy": _acc(r), "95% interval": _interval(r),
                           "vs baseline": f"{100 * r['diff_vs_baseline']:+.1f} pts" if r["test"] else "",
                           "p": f"{r['p_value']:.3g} ({r['test']})" if r["test"] else ""} for r in rows])  # fmt: skip
    summary = summary_text(rows, cfg, n_test, bool(len(rows) > 1))
    md += ["## Final comparison", out.table(final, "final_comparison", shown),
           out.figure(plots.accuracy_intervals(final.rename(columns={"configuration": "name"})), "final_comparison", "test accuracy with intervals"),
           f"**Summary.** {summary}"]  # fmt: skip
    md.insert(1, f"**Summary.** {summary}")

    all_runs = pd.DataFrame([{"configuration": n, **r.hyperparameters, "seed": r.seed, "test_accuracy": r.test_accuracy,
                              "test_loss": r.test_loss, "seconds": r.seconds, "initial_weights_sha1": r.initial_weights}
                             for n, rs in runs.items() for r in rs])  # fmt: skip
    md += ["### Every retraining", out.table(all_runs.round({"seconds": 1}), "runs")]
    storage.write_text(root / "report.md", "\n\n".join(md) + "\n")
    storage.write_json(root / "config.json", cfg.to_dict())
    storage.write_json(root / "metrics.json", _finite({
        "config": cfg.to_dict(), "class_names": names, "test_size": n_test, "warnings": warnings, "summary": summary,
        "splits": {k: len(v) for k, v in splits.items()},
        "baseline": {"test_accuracy": b["test_accuracy"], "test_loss": b["test_loss"], "classification_report": report,
                     "confusion_matrix": matrix.tolist()},
        "comparison": [{k: v for k, v in r.items()} for r in rows],
        "arms": {n: {"hyperparameters": rs[0].hyperparameters, **stats[n]} for n, rs in runs.items()},
        "searches": [{"name": s.name, "tuner": s.config.tuner, "trials": len(s.trials),
                      "best_trial_id": None if s.best is None else str(s.best["trial_id"]),
                      "best_val_accuracy": None if s.best is None else float(s.best["val_accuracy"])} for s in searches],
    }))  # fmt: skip


def _finite(obj: Any) -> Any:
    """NaN and infinity as null: metrics.json stays strict JSON."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


