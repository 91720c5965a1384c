"""Plots for the report: data in (arrays, DataFrames, class names), a matplotlib Figure out.

Nothing here saves, shows or touches pyplot's global state: figures are plain `Figure` objects
(so they need no backend and cannot leak into pyplot's list of open figures); the report saves them.
Functions that draw a single Axes accept `ax=` to draw into an existing figure instead.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

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
    picks = []
    for label in np.unique(labels)[:n]:
        picks.append(int(np.flatnonzero(labels == label)[0]))
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
               label=split, color=SPLIT_COLORS.get(split))  # fmt: skip
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
                xticklabels=list(class_names), yticklabels=list(class_names))  # fmt: skip
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion matrix ({int(np.sum(matrix))} test images)")
    ax.tick_params(axis="x", labelrotation=45)
    ax.tick_params(axis="y", labelrotation=0)
    return fig


def prediction_grid(
    images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str],
    *, per_row: int = 6, seed: int = 0,
) -> Figure:  # fmt: skip
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
                         fontsize=9, color=CORRECT if ok else WRONG)  # fmt: skip
    return fig


def validation_curves(
    histories: Mapping[str, Mapping[str, Sequence[float]]], *, metric: str = "val_accuracy", ax: Axes | None = None
) -> Figure:
    """One line per run (e.g. per optimizer): `metric` against epoch."""
    fig, ax = _axes(ax, (7, 4))
    for name, history in histories.items():
        values = history.get(metric, [])
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, label=name,
                color=OPTIMIZER_COLORS.get(name.split()[0]))  # fmt: skip
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
    done = trials[trials["status"] == "COMPLETED"]
    for optimizer, group in done.groupby("optimizer", sort=True):
        group = group.sort_values("learning_rate")
        ax.plot(group["learning_rate"], group["val_accuracy"], marker="o", linestyle=":",
                label=optimizer, color=OPTIMIZER_COLORS.get(optimizer))  # fmt: skip
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
    done = trials[trials["status"] == "COMPLETED"]
    axes = [fig.add_subplot(1, 3, 1)]
    axes += [fig.add_subplot(1, 3, i, sharey=axes[0]) for i in (2, 3)]
    for i, ax in enumerate(axes, 1):
        column = f"dropout_{i}"
        for optimizer, group in done.groupby("optimizer", sort=True):
            ax.scatter(group[column], group["val_accuracy"], label=optimizer, alpha=0.8,
                       color=OPTIMIZER_COLORS.get(optimizer))  # fmt: skip
        values = sorted(done[column].unique()) if len(done) else []
        if len(values) == 1:
            ax.set_title(f"{column} (fixed at {values[0]:g})")
        else:
            ax.set_title(column)
            # A marker per value, not a line: the other hyperparameters vary too, so this is no trend.
            means = done.groupby(column)["val_accuracy"].mean()
            ax.scatter(means.index, means.values, marker="_", s=400, color="black", linewidth=1.5, label="mean")
        ax.set_xlim(-0.05, 0.55)
        ax.set_xlabel("dropout rate")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("best validation accuracy")
    if len(done):
        axes[-1].legend(frameon=False, fontsize=8)
    fig.suptitle(title or "Effect of each dropout rate")
    return fig


def accuracy_intervals(table: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """Test accuracy with its 95% interval, one row per configuration (columns: name, test_accuracy, ci_low, ci_high)."""
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
