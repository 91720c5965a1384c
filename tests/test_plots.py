"""Plot smoke tests under agg (render into a BytesIO, nothing left open) and the numbers behind them."""
from __future__ import annotations

import io
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from study import plots
from study.results import best_so_far, best_trial

CLASSES = ("cat", "dog", "frog")


def _trials() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trial_id": ["00", "01", "02", "03"],
            "status": ["COMPLETED", "FAILED", "COMPLETED", "COMPLETED"],
            "optimizer": ["adam", "sgd", "sgd", "rmsprop"],
            "learning_rate": [1e-3, 10.0, 1e-2, 1e-4],
            "dropout_1": [0.2, 0.1, 0.0, 0.5],
            "dropout_2": [0.3, 0.3, 0.3, 0.3],
            "dropout_3": [0.4, 0.0, 0.4, 0.2],
            "val_accuracy": [0.5, None, 0.6, 0.55],
            "epochs": [3, 1, 2, 3],
        }
    )


def _render(fig: Figure) -> bytes:
    assert isinstance(fig, Figure)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
    assert not plt.get_fignums()  # plain Figures: nothing registered with pyplot
    return buffer.getvalue()


def test_every_plot_renders():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(12) % 3
    history = {"loss": [2.0, 1.5], "accuracy": [0.3, 0.5], "val_loss": [2.1, 1.7], "val_accuracy": [0.3, 0.45]}
    counts = pd.DataFrame({"train": [4, 4, 4], "validation": [1, 1, 1], "test": [2, 2, 2]}, index=list(CLASSES))
    table = pd.DataFrame({"name": ["baseline", "grid best"], "test_accuracy": [0.5, 0.6],
                          "ci_low": [0.4, 0.5], "ci_high": [0.6, 0.7]})
    figures = [
        plots.sample_images(images, labels, CLASSES),
        plots.sample_images(images[..., :1], labels, CLASSES, n=2),  # grayscale
        plots.label_counts(counts),
        plots.training_curves(history, title="baseline"),
        plots.confusion_heatmap(np.array([[3, 1, 0], [0, 4, 0], [1, 0, 3]]), CLASSES),
        plots.prediction_grid(images, labels, (labels + (np.arange(12) % 4 == 0)) % 3, CLASSES),
        plots.prediction_grid(images, labels, labels, CLASSES),  # nothing misclassified
        plots.validation_curves({"adam": history, "sgd": history}),
        plots.best_so_far({"grid": best_so_far(_trials()), "bayesian": best_so_far(_trials().iloc[:2])}),
        plots.accuracy_vs_learning_rate(_trials()),
        plots.accuracy_vs_learning_rate(_trials().iloc[1:2]),  # only a failed trial
        plots.dropout_effect(_trials()),
        plots.accuracy_intervals(table),
    ]
    for fig in figures:
        _render(fig)


def test_ax_argument_draws_into_the_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    assert plots.confusion_heatmap(np.eye(3, dtype=int), CLASSES, ax=ax) is fig
    assert ax.get_xlabel() == "predicted class"
    assert [t.get_text() for t in ax.get_xticklabels()] == list(CLASSES)


def test_best_so_far_counts_failed_trials_as_cost_only():
    curve = best_so_far(_trials())
    assert curve["trial"].tolist() == [1, 2, 3, 4]
    assert curve["cumulative_epochs"].tolist() == [3, 4, 6, 9]
    assert curve["best_val_accuracy"].tolist() == [0.5, 0.5, 0.6, 0.6]


def test_best_trial_is_the_highest_validation_accuracy_earliest_on_ties():
    assert best_trial(_trials())["trial_id"] == "02"
    tied = _trials().assign(val_accuracy=[0.6, None, 0.6, 0.6])
    assert best_trial(tied)["trial_id"] == "00"
    assert best_trial(_trials().assign(status="FAILED")) is None
