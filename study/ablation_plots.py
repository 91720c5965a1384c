"""The ablation's figures: the path as a waterfall, and each component's difference one at a time, with intervals."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure


def waterfall(labels: Sequence[str], steps: Sequence[float], lows: Sequence[float], highs: Sequence[float], *,
              start: float, title: str = "") -> Figure:
    """Bars from the source's test accuracy (`start`, points) through each step's change, each change's 95% interval
    drawn on its bar's end; the last bar's top is the target's."""
    fig = Figure(figsize=(1.6 * len(labels) + 3, 4.2), layout="constrained")
    ax = fig.add_subplot()
    level = start
    for i, (label, step, low, high) in enumerate(zip(labels, steps, lows, highs)):
        colour = "tab:green" if low > 0 else "tab:red" if high < 0 else "tab:gray"
        ax.bar(i + 1, step, bottom=level, color=colour, alpha=0.8, width=0.6)
        if np.isfinite(low):
            ax.errorbar(i + 1, level + step, yerr=[[step - low], [high - step]], color="black", capsize=4)
        ax.text(i + 1, level + max(step, 0) + 0.05, f"{step:+.1f}", ha="center", va="bottom", fontsize=9)
        level += step
    ax.bar(0, start, color="tab:blue", alpha=0.6, width=0.6)
    ax.bar(len(labels) + 1, level, color="tab:blue", alpha=0.6, width=0.6)
    ax.set_xticks(range(len(labels) + 2), ["source", *labels, "target"], rotation=20, ha="right")
    ax.set_ylim(start - max(1.0, abs(min(0.0, *steps)) + 1), level + max(1.0, max(0.0, *steps)) + 0.5)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title or "The ablation path: each step's change, with its paired 95% interval")
    ax.grid(axis="y", alpha=0.3)
    return fig


def differences(labels: Sequence[str], views: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float]]], *,
                title: str = "") -> Figure:
    """Per component, one row per view ({view: (means, lows, highs)} in points): the difference and its interval."""
    fig = Figure(figsize=(8, 0.55 * len(labels) * len(views) + 1.6), layout="constrained")
    ax = fig.add_subplot()
    rows = len(views)
    for j, (view, (means, lows, highs)) in enumerate(views.items()):
        y = np.arange(len(labels)) * (rows + 1) + j
        err = [np.subtract(means, lows), np.subtract(highs, means)]
        ax.errorbar(means, y, xerr=err, fmt="o", capsize=3, label=view)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(np.arange(len(labels)) * (rows + 1) + (rows - 1) / 2, labels)
    ax.invert_yaxis()
    ax.set_xlabel("difference of test accuracy (points), paired by seed, 95% interval")
    ax.set_title(title or "One change at a time")
    ax.legend(loc="best", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig
