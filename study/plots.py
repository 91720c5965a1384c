"""Plots for the report: data in (arrays, DataFrames, class names), a matplotlib Figure out.

Nothing here saves, shows or touches pyplot's global state: figures are plain `Figure` objects
(so they need no backend and cannot leak into pyplot's list of open figures); the report saves them.
Functions that draw a single Axes accept `ax=` to draw into an existing figure instead.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patheffects import withStroke
from matplotlib.ticker import PercentFormatter

from study.results import completed

if TYPE_CHECKING:  # annotations only: plots take plain data and need nothing else from results at run time
    from study.insights import Importance, ParallelCoordinates

OPTIMIZER_COLORS = {"adam": "tab:blue", "sgd": "tab:orange", "rmsprop": "tab:green"}
SPLIT_COLORS = {"train": "tab:blue", "validation": "tab:orange", "test": "tab:green"}
CORRECT, WRONG = "#1a7f37", "#cf222e"  # GitHub's green and red: readable on white


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _show_image(ax: Axes, image: np.ndarray) -> None:
    if image.ndim == 3 and image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def sample_images(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], *, n: int = 5) -> Figure:
    """The first image of each of the first `n` classes present, titled with its class name."""
    from study.data import first_of_each_class

    picks = first_of_each_class(labels, n)
    fig = Figure(figsize=(2.0 * max(len(picks), 1), 2.4), layout="constrained")
    for i, index in enumerate(picks):
        ax = fig.add_subplot(1, len(picks), i + 1)
        _show_image(ax, images[index])
        ax.set_title(class_names[labels[index]], fontsize=11)
    return fig


def label_counts(counts: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """Grouped bars: one group per class (the index), one bar per split (the columns)."""
    fig, ax = _axes(ax, (max(6.0, 0.8 * len(counts)), 4.0))
    width = 0.8 / max(len(counts.columns), 1)
    x = np.arange(len(counts))
    for i, split in enumerate(counts.columns):
        ax.bar(x + (i - (len(counts.columns) - 1) / 2) * width, counts[split], width,
               label=split, color=SPLIT_COLORS.get(split))
    ax.set_xticks(x, counts.index, rotation=30, ha="right")
    ax.set_ylabel("images")
    ax.set_title("Images per class and split")
    ax.legend(frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def training_curves(history: Mapping[str, Sequence[float]], *, title: str = "") -> Figure:
    """Loss and accuracy per epoch, training and validation, side by side."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    for i, metric in enumerate(("loss", "accuracy")):
        ax = fig.add_subplot(1, 2, i + 1)
        for prefix, label, style in (("", "training", "-"), ("val_", "validation", "--")):
            values = history.get(prefix + metric, [])
            ax.plot(np.arange(1, len(values) + 1), values, style, marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric.capitalize())
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def confusion_heatmap(matrix: np.ndarray, class_names: Sequence[str], *, ax: Axes | None = None) -> Figure:
    """Counts of true (rows) against predicted (columns) classes, class names on both axes."""
    size = max(5.0, 0.7 * len(class_names) + 2)
    fig, ax = _axes(ax, (size + 1, size))
    sns.heatmap(matrix, annot=True, fmt="d", cmap="Blues", square=True, cbar=True, ax=ax,
                xticklabels=list(class_names), yticklabels=list(class_names))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion matrix ({int(np.sum(matrix))} test images)")
    ax.tick_params(axis="x", labelrotation=45)
    ax.tick_params(axis="y", labelrotation=0)
    return fig


def prediction_grid(
    images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str],
    *, per_row: int = 6, seed: int = 0,
) -> Figure:
    """One row of correctly and one of incorrectly classified images, titled true / predicted."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, mask in (("correct", y_true == y_pred), ("incorrect", y_true != y_pred)):
        idx = np.flatnonzero(mask)
        rows.append((name, np.sort(rng.choice(idx, min(per_row, len(idx)), replace=False)) if len(idx) else idx))
    fig = Figure(figsize=(1.8 * per_row, 4.8), layout="constrained")
    for r, (name, idx) in enumerate(rows):
        for c in range(per_row):
            ax = fig.add_subplot(2, per_row, r * per_row + c + 1)
            ax.axis("off")
            if c == 0:
                ax.text(-0.15, 0.5, name, transform=ax.transAxes, rotation=90, ha="right", va="center", fontsize=11)
            if c >= len(idx):
                if c == 0:
                    ax.text(0.5, 0.5, f"no {name} predictions", transform=ax.transAxes, ha="center", fontsize=9)
                continue
            i = idx[c]
            _show_image(ax, images[i])
            ok = y_true[i] == y_pred[i]
            ax.set_title(f"true: {class_names[y_true[i]]}\npred: {class_names[y_pred[i]]}",
                         fontsize=9, color=CORRECT if ok else WRONG)
    return fig


def validation_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]], *, metric: str = "val_accuracy", ax: Axes | None = None
) -> Figure:
    """One line per run (e.g. per optimizer): `metric` against epoch."""
    fig, ax = _axes(ax, (7, 4))
    for name, history in histories.items():
        values = history.get(metric, [])
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, label=name,
                color=OPTIMIZER_COLORS.get(name.split()[0]))
    ax.set_xlabel("epoch")
    label = metric.replace("val_", "validation ").replace("_", " ")
    ax.set_ylabel(label)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    ax.set_title(f"{label.capitalize()} per epoch")
    return fig


def best_so_far(curves: Mapping[str, pd.DataFrame]) -> Figure:
    """Best validation accuracy so far, against trial number and against cumulative epochs, one line per search.

    Each frame has the columns of `study.results.best_so_far`: trial, cumulative_epochs, best_val_accuracy.
    """
    fig = Figure(figsize=(11, 4), layout="constrained")
    for i, (x, label) in enumerate((("trial", "trial number"), ("cumulative_epochs", "cumulative training epochs"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for name, frame in curves.items():
            ax.step(frame[x], frame["best_val_accuracy"], where="post", marker="o", markersize=4, label=name)
        ax.set_xlabel(label)
        ax.set_ylabel("best validation accuracy so far")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, loc="lower right")
    fig.suptitle("Search progress: best validation accuracy so far")
    return fig


def accuracy_vs_learning_rate(trials: pd.DataFrame, *, title: str = "", ax: Axes | None = None) -> Figure:
    """Validation accuracy of completed trials against learning rate (log scale), one series per optimizer."""
    fig, ax = _axes(ax, (7, 4))
    done = completed(trials)
    for optimizer, group in done.groupby("optimizer", sort=True):
        group = group.sort_values("learning_rate")
        ax.plot(group["learning_rate"], group["val_accuracy"], marker="o", linestyle=":",
                label=optimizer, color=OPTIMIZER_COLORS.get(optimizer))
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("best validation accuracy")
    ax.grid(alpha=0.3, which="both")
    if len(done):
        ax.legend(frameon=False)
    else:
        ax.text(0.5, 0.5, "no completed trials", transform=ax.transAxes, ha="center")
    ax.set_title(title or "Validation accuracy against learning rate")
    return fig


def dropout_effect(trials: pd.DataFrame, *, title: str = "") -> Figure:
    """Validation accuracy against each dropout rate, one panel per dropout layer, coloured by optimizer."""
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    done = completed(trials)
    axes = [fig.add_subplot(1, 3, 1)]
    axes += [fig.add_subplot(1, 3, i, sharey=axes[0]) for i in (2, 3)]
    limits = _dropout_limits(done[[f"dropout_{i}" for i in (1, 2, 3)]])
    for i, ax in enumerate(axes, 1):
        column = f"dropout_{i}"
        for optimizer, group in done.groupby("optimizer", sort=True):
            ax.scatter(group[column], group["val_accuracy"], label=optimizer, alpha=0.8,
                       color=OPTIMIZER_COLORS.get(optimizer))
        values = sorted(done[column].unique()) if len(done) else []
        if len(values) == 1:
            ax.set_title(f"{column} (fixed at {values[0]:g})")
        else:
            ax.set_title(column)
            # A marker per value, not a line: the other hyperparameters vary too, so this is no trend.
            means = done.groupby(column)["val_accuracy"].mean()
            ax.scatter(means.index, means.values, marker="_", s=400, color="black", linewidth=1.5, label="mean")
        ax.set_xlim(*limits)
        ax.set_xlabel("dropout rate")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("best validation accuracy")
    if len(done):
        axes[-1].legend(frameon=False, fontsize=8)
    fig.suptitle(title or "Effect of each dropout rate")
    return fig


def _dropout_limits(rates: pd.DataFrame) -> tuple[float, float]:
    """One x range for all three panels, so they compare at a glance: the rates' range plus a margin."""
    values = pd.to_numeric(rates.stack(), errors="coerce").dropna()
    if values.empty:
        return -0.05, 0.55
    low, high = float(values.min()), float(values.max())
    margin = max(0.1 * (high - low), 0.05)
    return low - margin, high + margin


def accuracy_intervals(table: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """Test accuracy with its 95% interval, one row per configuration.

    Columns: name, test_accuracy, ci_low, ci_high.
    """
    fig, ax = _axes(ax, (7, 0.6 * len(table) + 1.6))
    y = np.arange(len(table))[::-1]
    acc = table["test_accuracy"].to_numpy(float)
    err = np.vstack([acc - table["ci_low"].to_numpy(float), table["ci_high"].to_numpy(float) - acc])
    ax.errorbar(acc, y, xerr=err, fmt="o", capsize=5, color="tab:blue")
    for yi, a in zip(y, acc):
        ax.annotate(f"{a:.1%}", (a, yi), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=9)
    ax.set_yticks(y, table["name"])
    ax.set_ylim(-0.7, len(table) - 0.3)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("test accuracy (95% interval)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Test accuracy of the final candidates")
    return fig


# --- what a search learned: importance, learning curves, parallel coordinates ----------------------

OTHER_COLOR = "tab:gray"  # an optimizer OPTIMIZER_COLORS does not know, or a model without one
_OUTLINE = [withStroke(linewidth=4.5, foreground="black")]  # the best trial's line stands out on any colour


def importance(result: Importance, *, title: str = "") -> Figure:
    """Horizontal bars of `study.insights.hyperparameter_importance`, largest on top, the std over shuffles as
    error bars; the figure says how many trials it rests on and that it is a hint, not a measurement."""
    table = result.importances
    fig, ax = _axes(None, (8, 1.9 + 0.42 * max(len(table), 3)))
    fig.suptitle(f"{title or 'Hyperparameter importance'}: from {result.n_trials} completed trials")
    notes = []
    if table.empty:
        ax.axis("off")
        if result.n_trials < result.needed:
            message = (f"Too few completed trials to rank hyperparameters: {result.n_trials} of the {result.needed}"
                       " needed\n(a forest fitted to fewer trials ranks noise)")
        else:
            message = "Every hyperparameter had a single value: there is nothing to rank"
        ax.text(0.5, 0.55, message, transform=ax.transAxes, ha="center", va="center", fontsize=10)
    else:
        y = np.arange(len(table))[::-1]
        budget = [name.startswith("tuner/") for name in table.index]
        ax.barh(y, table["mean"], xerr=table["std"], capsize=4, height=0.6, error_kw={"linewidth": 1},
                color=[OTHER_COLOR if b else "tab:blue" for b in budget])
        ax.set_yticks(y, [f"{n}\n(Hyperband budget)" if b else n for n, b in zip(table.index, budget)])
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_xlabel("drop in the forest's R² when shuffled (mean ± std over shuffles)")
        ax.grid(axis="x", alpha=0.3)
        fit = f"out-of-bag R² {result.oob_r2:.2f}"
        if not result.oob_r2 > 0:  # the forest predicts trials it did not see no better than their mean
            fit += ": no better than the mean on trials it did not see"
        notes += ["A hint, not a measurement: permutation importance of a random forest",
                  f"fitted to these trials ({fit})."]
    if result.fixed:
        notes.append(f"Single value in this search, left out: {', '.join(result.fixed)}.")
    ax.set_title("\n".join(notes), fontsize=9)
    return fig


def learning_curves(curves: pd.DataFrame, *, best_trial_id: str | None = None, title: str = "") -> Figure:
    """Validation accuracy per epoch, one line per trial, coloured by optimizer (`study.insights.learning_curves`).

    A Hyperband round starts from the last point of the round it continues, so a configuration reads as one
    line; an early-stopped trial ends where it stopped. The best trial's line (with the rounds leading to it)
    is drawn on top, thick and outlined in black, with a star at its best epoch.
    """
    fig, ax = _axes(None, (9, 4.8))
    trials = curves["trial_id"].nunique()
    fig.suptitle(f"{title or 'Validation accuracy per epoch'} ({trials} trials)")
    if curves.empty:
        ax.axis("off")
        ax.text(0.5, 0.5, "no learning curves (no trial has a history.json)", transform=ax.transAxes, ha="center")
        return fig
    groups = {t: g.sort_values("epoch") for t, g in curves.groupby("trial_id", sort=True)}
    ends = {t: (g["epoch"].iloc[-1], g["val_accuracy"].iloc[-1]) for t, g in groups.items()}
    highlighted = _chain(best_trial_id, curves)
    for trial_id, group in groups.items():
        x, y = group["epoch"].tolist(), group["val_accuracy"].tolist()
        parent = group["parent"].iloc[0]
        if parent in ends:
            x, y = [ends[parent][0], *x], [ends[parent][1], *y]
        color = OPTIMIZER_COLORS.get(group["optimizer"].iloc[0], OTHER_COLOR)
        if trial_id in highlighted:
            ax.plot(x, y, color=color, linewidth=2.5, zorder=3, path_effects=_OUTLINE)
        else:
            ax.plot(x, y, color=color, linewidth=1.1, alpha=0.5, zorder=2)
    optimizers = set(curves["optimizer"])
    handles = [Line2D([], [], color=c, label=o) for o, c in OPTIMIZER_COLORS.items() if o in optimizers]
    if not optimizers <= set(OPTIMIZER_COLORS):
        handles.append(Line2D([], [], color=OTHER_COLOR, label="other"))
    scored = groups[best_trial_id].dropna(subset=["val_accuracy"]) if best_trial_id in groups else curves.iloc[0:0]
    if len(scored):
        best = scored.loc[scored["val_accuracy"].idxmax()]
        ax.plot(best["epoch"], best["val_accuracy"], marker="*", markersize=15, color="gold",
                markeredgecolor="black", zorder=4, linestyle="none")
        color = OPTIMIZER_COLORS.get(best["optimizer"], OTHER_COLOR)
        handles.append(Line2D([], [], color=color, linewidth=2.5, path_effects=_OUTLINE, marker="*",
                              markersize=12, markerfacecolor="gold", markeredgecolor="black",
                              label=f"best: trial {best_trial_id}, {best['val_accuracy']:.3f}"))
    if curves["parent"].notna().any():
        ax.set_title("each Hyperband round continues the line of the round it was promoted from", fontsize=9)
    ax.legend(handles=handles, frameon=False, loc="lower right")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    return fig


def _chain(trial_id: str | None, curves: pd.DataFrame) -> set[str]:
    """The trial and the rounds it continues, back to the first."""
    parents = dict(zip(curves["trial_id"], curves["parent"]))
    chain = set()
    while isinstance(trial_id, str) and trial_id not in chain:  # a first round's parent is missing (NaN)
        chain.add(trial_id)
        trial_id = parents.get(trial_id)
    return chain


def parallel_coordinates(data: ParallelCoordinates, *, title: str = "") -> Figure:
    """One vertical axis per hyperparameter that varied, then validation accuracy; one line per completed trial,
    coloured by its score (`study.insights.parallel_coordinates`). The best trial is drawn last and thickest."""
    names = [axis.name for axis in data.axes]
    fig, ax = _axes(None, (max(7.0, 1.6 * len(names) + 1.5), 4.8))
    fig.suptitle(f"{title or 'Parallel coordinates'} ({len(data.scores)} completed trials)")
    if data.scores.empty:
        ax.axis("off")
        ax.text(0.5, 0.5, "no completed trials", transform=ax.transAxes, ha="center")
        return fig
    low, high = data.scores.min(), data.scores.max()
    norm = Normalize(low, high if high > low else low + 1e-9)
    cmap = colormaps["viridis"]
    x = np.arange(len(names))
    order = data.scores.sort_values(kind="stable").index  # the best drawn last, on top
    for trial_id in order:
        best = trial_id == order[-1]
        ax.plot(x, data.positions.loc[trial_id, names].to_numpy(float), color=cmap(norm(data.scores[trial_id])),
                linewidth=2.8 if best else 1.3, alpha=1.0 if best else 0.75, zorder=3 if best else 2,
                path_effects=_OUTLINE if best else None)
    for i, axis in enumerate(data.axes):
        ax.axvline(i, color="black", linewidth=1, zorder=1)
        last = i == len(names) - 1  # the score axis: labels on its right, where no line crosses
        for tick, label in zip(axis.ticks, axis.labels):
            ax.text(i + (0.04 if last else -0.04), tick, label, ha="left" if last else "right", va="center",
                    fontsize=8, zorder=5, bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.75, "pad": 0.5})
    ax.set_xticks(x, names)
    ax.set_yticks([])
    ax.set_xlim(-0.45, len(names) - 0.6)
    ax.set_ylim(-0.05, 1.05)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="validation accuracy", fraction=0.04)
    notes = [f"best (thick, outlined): trial {order[-1]}, {data.scores[order[-1]]:.3f}"]
    if data.fixed:
        notes.append("fixed: " + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in data.fixed.items()))
    ax.set_title("\n".join(notes), fontsize=9)
    return fig


VERDICT_COLORS = {"better": CORRECT, "worse": WRONG, "noise": "tab:blue"}


def difference_intervals(table: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """Each row's difference of test accuracy from the baseline, in points, with its 95% interval.

    Columns: name, diff_vs_baseline, diff_ci_low, diff_ci_high, test, verdict. Rows sit where
    `accuracy_intervals` puts them, so the two panels of `final_comparison` line up.
    """
    fig, ax = _axes(ax, (6, 0.6 * len(table) + 1.6))
    y = np.arange(len(table))[::-1]
    for yi, (_, row) in zip(y, table.iterrows()):
        if row["name"] == "baseline" or row.get("verdict") == "same configuration":
            ax.plot(0, yi, "D", color="black", markersize=5)
            label = "reference" if row["name"] == "baseline" else "same configuration"
            ax.annotate(label, (0, yi), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=9)
            continue
        d, low, high = (100 * float(row[k]) for k in ("diff_vs_baseline", "diff_ci_low", "diff_ci_high"))
        colour = VERDICT_COLORS.get(row.get("verdict"), "tab:gray")
        ax.errorbar(d, yi, xerr=[[d - low], [high - d]], fmt="o", capsize=5, color=colour)
        ax.annotate(f"{d:+.1f}", (d, yi), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=9)
    ax.axvline(0, color="black", linewidth=1)
    # Room on both sides of zero for the labels drawn there, whichever side the differences fall.
    ends = [0.0, *(100 * table[k].dropna().to_numpy(float) for k in ("diff_ci_low", "diff_ci_high"))]
    low, high = float(np.min(np.hstack(ends))), float(np.max(np.hstack(ends)))
    pad = max(0.25 * (high - low), 1.0)
    ax.set_xlim(low - pad, high + pad)
    ax.set_yticks(y, table["name"])
    ax.set_ylim(-0.7, len(table) - 0.3)
    ax.set_xlabel("difference from the baseline, points (95% interval)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Against the baseline (green: better, red: worse, beyond the noise)")
    return fig


def final_comparison(table: pd.DataFrame) -> Figure:
    """Test accuracy of every configuration beside its paired difference from the baseline."""
    fig = Figure(figsize=(13, 0.6 * len(table) + 1.8), layout="constrained")
    accuracy_intervals(table, ax=fig.add_subplot(1, 2, 1))
    right = fig.add_subplot(1, 2, 2)
    difference_intervals(table, ax=right)
    right.set_yticklabels([])
    return fig
