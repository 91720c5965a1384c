"""What each search learned: importance, learning curves and parallel coordinates, on hand-made trials.

The numbers are checked on the extractions (study.results); the figures (study.plots) are only rendered.
No training and no TensorFlow: project folders are hand-written trial.json and history.json files.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from study import insights, plots, results

LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]


def _frame(n: int = 16, *, seed: int = 1) -> pd.DataFrame:
    """Completed trials whose score depends on the learning rate (best at 1e-3) and not on dropout_1."""
    rng = np.random.default_rng(seed)
    learning_rate = np.array([LEARNING_RATES[i % 5] for i in range(n)])
    return pd.DataFrame(
        {
            "trial_id": [f"{i:02d}" for i in range(n)],
            "status": "COMPLETED",
            "optimizer": [("adam", "sgd", "rmsprop")[i % 3] for i in range(n)],
            "learning_rate": learning_rate,
            "dropout_1": rng.choice([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], n),
            "dropout_2": 0.3,
            "dropout_3": 0.4,
            "val_accuracy": 0.7 - 0.1 * np.abs(np.log10(learning_rate) + 3) + rng.normal(0, 0.005, n),
            "val_loss": 1.0,
            "best_epoch": 3,
            "epochs": 5,
            "seconds": 10.0,
            "error": "",
        }
    )


def _write_trial(project: Path, trial_id: str, values: dict, val_accuracy: list[float] | None,
                 status: str = "COMPLETED") -> None:
    """A trial folder as Keras Tuner and study.tuners leave it; no history.json when val_accuracy is None."""
    folder = project / f"trial_{trial_id}"
    folder.mkdir(parents=True)
    scores = val_accuracy or []
    best_step = int(np.argmax(scores)) if scores and status == "COMPLETED" else None
    trial = {"trial_id": trial_id, "status": status, "hyperparameters": {"values": values},
             "score": max(scores) if best_step is not None else None, "best_step": best_step,
             "metrics": {"metrics": {}}, "message": None if status == "COMPLETED" else "Traceback\nNaN loss"}
    (folder / "trial.json").write_text(json.dumps(trial))
    if val_accuracy is not None:
        history = {"history": {"val_accuracy": val_accuracy}, "epochs": len(val_accuracy), "seconds": 1.0}
        (folder / "history.json").write_text(json.dumps(history))


def _hyperband_project(project: Path) -> Path:
    """A configuration promoted twice (rounds of 2, 5 and 15 epochs, the last stopped early), another
    stopped after its first round, and a trial still running (no history.json yet)."""
    adam = {"optimizer": "adam", "learning_rate": 1e-3, "dropout_1": 0.2, "dropout_2": 0.3, "dropout_3": 0.4}
    sgd = {**adam, "optimizer": "sgd", "learning_rate": 1e-2}

    def hb(epochs, initial, bracket_round, parent=None):
        return {"tuner/epochs": epochs, "tuner/initial_epoch": initial, "tuner/bracket": 2,
                "tuner/round": bracket_round, **({"tuner/trial_id": parent} if parent else {})}

    _write_trial(project, "0000", {**adam, **hb(2, 0, 0)}, [0.30, 0.40])
    _write_trial(project, "0001", {**sgd, **hb(2, 0, 0)}, [0.20, 0.25])
    _write_trial(project, "0002", {**adam, **hb(5, 2, 1, "0000")}, [0.45, 0.50, 0.55])
    _write_trial(project, "0003", {**adam, **hb(15, 5, 2, "0002")}, [0.60, 0.65, 0.64, 0.63])
    _write_trial(project, "0004", {**sgd, **hb(2, 0, 0)}, None, status="RUNNING")
    return project


def _render(fig: Figure) -> None:
    assert isinstance(fig, Figure)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
    assert not plt.get_fignums()


# --- which columns are hyperparameters, and how each is scaled ---------------------------------

def test_hyperparameter_columns_are_every_column_but_outcomes_and_hyperbands_own():
    frame = _frame(3).assign(units=[32, 64, 128], batch_norm=[True, False, True], **{"tuner/epochs": 2})
    assert results.hyperparameter_columns(frame) == [
        "optimizer", "learning_rate", "dropout_1", "dropout_2", "dropout_3", "units", "batch_norm"]
    scale = {name: insights.hyperparameter_scale(frame[name]) for name in results.hyperparameter_columns(frame)}
    assert scale == {"optimizer": "categorical", "learning_rate": "log", "dropout_1": "linear",
                     "dropout_2": "linear", "dropout_3": "linear", "units": "linear", "batch_norm": "categorical"}
    assert insights.hyperparameter_scale(pd.Series([16, 64, 512], name="units")) == "log"  # a factor of 32
    assert insights.hyperparameter_scale(pd.Series([1e-3, 2e-3], name="learning_rate")) == "log"  # by name
    assert insights.hyperparameter_scale(pd.Series([0.0, 10.0, 500.0], name="x")) == "linear"  # 0 has no log


# --- importance ---------------------------------------------------------------------------------

def test_importance_ranks_the_learning_rate_above_an_irrelevant_dropout():
    frame = pd.concat([_frame(), _frame(1).assign(trial_id="99", status="FAILED", val_accuracy=None)])
    result = insights.hyperparameter_importance(frame)
    assert result.n_trials == 16  # the failed trial is left out
    assert result.fixed == ("dropout_2", "dropout_3")
    assert list(result.importances.index)[0] == "learning_rate"
    assert set(result.importances.index) == {"learning_rate", "dropout_1", "optimizer"}
    learning_rate, dropout = result.importances.loc["learning_rate"], result.importances.loc["dropout_1"]
    assert learning_rate["mean"] - learning_rate["std"] > dropout["mean"] + dropout["std"]
    assert learning_rate["mean"] > 5 * dropout["mean"]
    assert result.oob_r2 > 0.2  # the forest does predict trials it did not see: the score depends on the inputs
    noise = _frame().assign(val_accuracy=np.random.default_rng(0).normal(0.6, 0.01, 16))
    assert insights.hyperparameter_importance(noise).oob_r2 < 0  # and cannot when the score is noise


def test_importance_is_reproducible_from_its_seed():
    first = insights.hyperparameter_importance(_frame(), seed=3)
    pd.testing.assert_frame_equal(first.importances, insights.hyperparameter_importance(_frame(), seed=3).importances)
    other = insights.hyperparameter_importance(_frame(), seed=4).importances
    assert not np.allclose(first.importances.loc[other.index, "mean"], other["mean"])


def test_importance_with_too_few_trials_says_how_many_it_needs():
    result = insights.hyperparameter_importance(_frame(7))
    assert result.importances.empty and (result.n_trials, result.needed) == (7, 8)
    five_vary = _frame(9).assign(dropout_2=[0.0, 0.1] * 4 + [0.2], dropout_3=[0.5, 0.4, 0.3] * 3)
    result = insights.hyperparameter_importance(five_vary)  # 2 per varying hyperparameter: 10
    assert result.importances.empty and (result.n_trials, result.needed) == (9, 10)


def test_importance_of_hyperband_trials_holds_their_epochs_apart():
    # The score is set by the round's epochs alone: the budget, not a hyperparameter, must take the credit.
    epochs = [(2, 5, 15)[i // 3 % 3] for i in range(18)]  # not in step with the optimizer's i % 3
    frame = _frame(18).assign(**{"tuner/epochs": epochs, "tuner/bracket": 2})
    frame["val_accuracy"] = frame["tuner/epochs"].map({2: 0.3, 5: 0.5, 15: 0.7})
    result = insights.hyperparameter_importance(frame)
    assert list(result.importances.index)[0] == results.BUDGET
    assert result.importances.loc[results.BUDGET, "mean"] > 0.5
    assert result.importances.drop(results.BUDGET)["mean"].abs().max() < 0.05


def test_empty_and_all_failed_searches(tmp_path):
    empty = results.trials_frame(tmp_path / "empty")
    failed = _frame(4).assign(status="FAILED", val_accuracy=None)
    for frame in (empty, failed):
        importance = insights.hyperparameter_importance(frame)
        assert importance.importances.empty and importance.n_trials == 0 and importance.needed == 8
        assert math.isnan(importance.oob_r2)
        parallel = insights.parallel_coordinates(frame)
        assert parallel.positions.empty and parallel.scores.empty
        assert [axis.name for axis in parallel.axes] == ["val_accuracy"]
        _render(plots.importance(importance))
        _render(plots.parallel_coordinates(parallel))
    curves = insights.learning_curves(tmp_path / "empty", empty)
    assert curves.empty and "line" in curves.columns
    _render(plots.learning_curves(curves, best_trial_id=None))


# --- learning curves ----------------------------------------------------------------------------

def test_learning_curves_are_in_absolute_epochs_and_rounds_continue_their_line(tmp_path):
    project = _hyperband_project(tmp_path / "hyperband")
    curves = insights.learning_curves(project, results.trials_frame(project))
    by_trial = {t: g for t, g in curves.groupby("trial_id")}
    assert sorted(by_trial) == ["0000", "0001", "0002", "0003"]  # 0004 is running: no history yet
    # Keras's history lists only the epochs of its own fit: a round starting at epoch 5 recorded 6, 7, ...
    assert by_trial["0003"]["epoch"].tolist() == [6, 7, 8, 9]  # stopped early: 4 of its 10 epochs
    assert by_trial["0003"]["val_accuracy"].tolist() == [0.60, 0.65, 0.64, 0.63]
    assert by_trial["0002"]["epoch"].tolist() == [3, 4, 5]
    assert by_trial["0000"]["epoch"].tolist() == [1, 2]
    lines = curves.groupby("trial_id")["line"].first().to_dict()
    assert lines == {"0000": "0000", "0001": "0001", "0002": "0000", "0003": "0000"}
    parents = curves.drop_duplicates("trial_id").set_index("trial_id")["parent"].to_dict()
    assert parents["0003"] == "0002" and pd.isna(parents["0000"])
    assert curves.set_index("trial_id").loc["0001", "optimizer"].unique().tolist() == ["sgd"]


def test_learning_curves_of_a_search_without_rounds_start_at_epoch_one(tmp_path):
    project = tmp_path / "grid"
    _write_trial(project, "00", {"optimizer": "adam", "learning_rate": 1e-3}, [0.3, 0.4, 0.5])
    _write_trial(project, "01", {"optimizer": "sgd", "learning_rate": 10.0}, [], status="FAILED")
    curves = insights.learning_curves(project, results.trials_frame(project))
    assert curves["epoch"].tolist() == [1, 2, 3] and curves["line"].tolist() == ["00"] * 3


def test_the_best_trials_line_is_highlighted_with_the_rounds_before_it(tmp_path):
    project = _hyperband_project(tmp_path / "hyperband")
    curves = insights.learning_curves(project, results.trials_frame(project))
    fig = plots.learning_curves(curves, best_trial_id="0003")
    thick = [line for line in fig.axes[0].lines if line.get_linewidth() == 2.5]
    assert len(thick) == 3  # 0000, 0002 and 0003: one configuration
    # 0003's line starts where 0002's ended, so the configuration reads as one line.
    assert max(thick, key=lambda line: len(line.get_xdata())).get_xdata().tolist() == [5, 6, 7, 8, 9]
    _render(fig)


# --- parallel coordinates -----------------------------------------------------------------------

def test_parallel_coordinates_place_each_trial_on_each_axis():
    frame = pd.DataFrame({
        "trial_id": ["0", "1", "2", "3", "4"],
        "status": ["COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED", "FAILED"],
        "optimizer": ["adam", "sgd", "rmsprop", "adam", "sgd"],
        "learning_rate": [1e-4, 1e-3, 1e-2, 3e-4, 10.0],  # the failed trial's 10 must not stretch the axis
        "dropout_1": [0.2, 0.2, 0.2, 0.2, 0.9],
        "val_accuracy": [0.5, 0.6, 0.7, 0.55, None],
    })
    data = insights.parallel_coordinates(frame)
    assert [axis.name for axis in data.axes] == ["optimizer", "learning_rate", "val_accuracy"]
    assert data.fixed == {"dropout_1": 0.2}
    assert list(data.positions.index) == ["0", "1", "2", "3"]
    learning_rate, optimizer, score = (data.axes[i] for i in (1, 0, 2))
    assert data.positions["learning_rate"].tolist() == pytest.approx([0.0, 0.5, 1.0, math.log10(3) / 2])
    assert learning_rate.scale == "log"
    assert learning_rate.labels == ("1e-4", "3e-4", "1e-3", "1e-2")
    assert learning_rate.ticks == pytest.approx((0.0, math.log10(3) / 2, 0.5, 1.0))
    assert optimizer.labels == ("adam", "rmsprop", "sgd") and optimizer.ticks == (0.0, 0.5, 1.0)
    assert data.positions["optimizer"].tolist() == [0.0, 1.0, 0.5, 0.0]
    assert data.scores.tolist() == [0.5, 0.6, 0.7, 0.55]
    assert data.positions["val_accuracy"].tolist() == pytest.approx([0.0, 0.5, 1.0, 0.25])
    # Score ticks are round numbers within the scores' range, each at its own place on the axis.
    assert all(0.5 <= float(label) <= 0.7 for label in score.labels)
    assert score.ticks == pytest.approx(tuple((float(label) - 0.5) / 0.2 for label in score.labels))


def test_parallel_coordinates_label_many_values_with_round_numbers():
    frame = _frame(12).assign(learning_rate=np.geomspace(1e-5, 1e-1, 12), dropout_2=np.linspace(0, 0.9, 12))
    data = insights.parallel_coordinates(frame)
    axes = {axis.name: axis for axis in data.axes}
    assert axes["learning_rate"].labels == ("1e-5", "1e-4", "1e-3", "1e-2", "1e-1")
    assert axes["learning_rate"].ticks == pytest.approx((0.0, 0.25, 0.5, 0.75, 1.0))
    assert axes["dropout_2"].labels == ("0", "0.2", "0.4", "0.6", "0.8")
    assert axes["dropout_2"].ticks == pytest.approx(tuple(v / 0.9 for v in (0, 0.2, 0.4, 0.6, 0.8)))


# --- figures ------------------------------------------------------------------------------------

def test_every_insight_figure_renders(tmp_path):
    frame = _frame()
    result = insights.hyperparameter_importance(frame)
    fig = plots.importance(result, title="bayesian")
    assert "from 16 completed trials" in fig.get_suptitle()
    assert "hint, not a measurement" in fig.axes[0].get_title()
    _render(fig)
    _render(plots.importance(insights.hyperparameter_importance(_frame(5))))  # too few: says so, no bars
    _render(plots.parallel_coordinates(insights.parallel_coordinates(frame), title="bayesian"))
    _render(plots.parallel_coordinates(insights.parallel_coordinates(frame.iloc[:1])))  # one trial
    project = _hyperband_project(tmp_path / "hyperband")
    curves = insights.learning_curves(project, results.trials_frame(project))
    _render(plots.learning_curves(curves, best_trial_id="0003", title="hyperband"))
    _render(plots.learning_curves(curves.assign(optimizer=None)))  # a model without an optimizer choice


def test_dropout_axes_follow_the_data():
    frame = _frame(4).assign(dropout_1=[0.0, 0.3, 0.6, 0.9])
    for ax in plots.dropout_effect(frame).axes:
        low, high = ax.get_xlim()
        assert low < 0.0 and high > 0.9
    narrow = _frame(4).assign(dropout_1=[0.0, 0.1, 0.5, 0.5])  # the notebook's range keeps its old axis
    assert plots.dropout_effect(narrow).axes[0].get_xlim() == pytest.approx((-0.05, 0.55))
