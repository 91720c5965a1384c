from __future__ import annotations

import json

import keras_tuner
import pandas as pd
import pytest
from fakes import refused

from study import search
from study.config import SearchConfig
from study.tuners import GridSearch


def _args(data, tmp_path, *extra):
    return ["--data-dir", str(data), "--epochs", "1", "--max-trials", "2", "--directory", str(tmp_path / "runs"), *extra]


@pytest.mark.parametrize("tuner", ["grid", "bayesian"])
def test_search_end_to_end(tiny_data, tmp_path, capsys, tuner):
    argv = _args(tiny_data, tmp_path, "--tuner", tuner)
    assert search.main(argv) == 0
    project = tmp_path / "runs" / tuner
    table = pd.read_csv(project / "trials.csv")
    assert len(table) == 2 and set(table.status) == {"COMPLETED"}
    assert {"trial_id", "status", "optimizer", "learning_rate", "dropout_1", "dropout_2", "dropout_3",
            "val_accuracy", "val_loss", "best_epoch", "epochs", "seconds"} <= set(table.columns)
    assert table.epochs.tolist() == [1, 1] and (table.seconds > 0).all()
    assert (project / "trials.md").read_text().count("COMPLETED") == 2
    saved = json.loads((project / "config.json").read_text())
    assert saved.pop("class_names") == [f"class{i}" for i in range(10)]
    assert saved.pop("command") == "python -m study.search " + " ".join(argv)  # the report's provenance
    assert SearchConfig.from_dict(saved) == search.parse_config(argv)
    for trial_id in table.trial_id.astype(str):
        history = json.loads(next(project.glob(f"trial_*{trial_id}/history.json")).read_text())
        assert set(history["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
        # In-trial timings for the time-left estimate: one per epoch, warm-up a part of them.
        assert len(history["epoch_seconds"]) == history["epochs"] == 1
        assert 0 < history["warmup_seconds"] < sum(history["epoch_seconds"]) < history["seconds"]
        assert history["environment"]["cores"] >= 1 and history["environment"]["tensorflow"]
        assert history["ended_at"] - history["started_at"] == pytest.approx(history["seconds"], abs=1)
    out = capsys.readouterr().out
    assert "best: trial" in out and "2/2 done" in out
    if tuner == "grid":  # the first grid point is the notebook's baseline
        assert table.iloc[0][["optimizer", "learning_rate", "dropout_1"]].tolist() == ["adam", 0.001, 0.2]


def test_rerun_resumes_and_more_trials_continue(tiny_data, tmp_path, capsys):
    argv = _args(tiny_data, tmp_path, "--learning-rates", "0.001,0.01", "--optimizers", "adam")
    assert search.main(argv) == 0
    capsys.readouterr()
    assert search.main(argv) == 0
    assert "resuming" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "runs" / "grid" / "trials.csv")
    assert len(table) == 2
    argv[argv.index("--max-trials") + 1] = "5"  # raising max-trials resumes; the grid has 2 points only
    assert search.main(argv) == 0
    assert len(pd.read_csv(tmp_path / "runs" / "grid" / "trials.csv")) == 2


def test_changed_space_is_refused(tiny_data, tmp_path, capsys):
    assert search.main(_args(tiny_data, tmp_path, "--max-trials", "1")) == 0
    capsys.readouterr()
    refused(capsys, search.main, _args(tiny_data, tmp_path, "--max-trials", "1", "--learning-rates", "0.5"),
            "--overwrite", "--project-name", "space")
    assert search.main(_args(tiny_data, tmp_path, "--max-trials", "1", "--learning-rates", "0.5", "--overwrite")) == 0
    assert pd.read_csv(tmp_path / "runs" / "grid" / "trials.csv").learning_rate.tolist() == [0.5]


def test_diverging_trial_is_recorded_as_failed_and_search_goes_on(tiny_data, tmp_path):
    argv = _args(tiny_data, tmp_path, "--optimizers", "sgd", "--learning-rates", "0.01,1e12")
    assert search.main(argv) == 0
    table = pd.read_csv(tmp_path / "runs" / "grid" / "trials.csv").set_index("learning_rate")
    assert table.loc[0.01, "status"] == "COMPLETED"
    assert table.loc[1e12, "status"] == "FAILED"
    assert "NaN" in table.loc[1e12, "error"] or "nan" in table.loc[1e12, "error"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--optimizers", "adam,lbfgs"], "unknown optimizer 'lbfgs'"),
        (["--learning-rates", "0.01,0"], "learning rates must be > 0"),
        (["--learning-rates", "fast"], "comma-separated list of numbers"),
        (["--dropout2", "1.0"], "dropout_2 rates must be in [0, 1)"),
        (["--dropout1", "-0.1"], "dropout_1 rates must be in [0, 1)"),
        (["--epochs", "0"], "--epochs must be > 0"),
        (["--batch-size", "-4"], "--batch-size must be > 0"),
        (["--max-trials", "0"], "--max-trials must be > 0"),
        (["--subset", "5"], "smaller than the number of classes"),
        (["--subset", "1000"], "larger than the 100 training images"),
        (["--image-size", "9x9"], "--image-size must be at least 10x10 for the notebook's CNN"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tiny_data, tmp_path, capsys, extra, message):
    refused(capsys, search.main, _args(tiny_data, tmp_path, *extra), message)
    assert not (tmp_path / "runs").exists()


def test_argparse_errors_exit_2_in_one_line(capsys):
    refused(capsys, search.main, ["--tuner", "random"], "invalid choice: 'random'")


def test_bad_data_dir_exit_2(tmp_path, capsys):
    refused(capsys, search.main, ["--data-dir", str(tmp_path / "nope"), "--directory", str(tmp_path / "runs")],
            "no such file or directory")
    assert not (tmp_path / "runs").exists()


class _NoTraining(GridSearch):
    """Grid wiring without training: the score is a function of the values."""

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        return {"val_accuracy": values["a"] * 10 + values["b"]}


def _grid_hypermodel(hp):
    hp.Choice("a", [2, 1, 3], default=1)
    hp.Choice("b", [0.5, 0.25], default=0.25)
    return None


def test_grid_covers_each_point_once_default_first_last_fastest(tmp_path):
    tuner = _NoTraining(_grid_hypermodel, objective=keras_tuner.Objective("val_accuracy", "max"),
                        directory=str(tmp_path), project_name="g", log=lambda _: None)
    tuner.search()
    order = [(t.hyperparameters.values["a"], t.hyperparameters.values["b"])
             for t in sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)]
    assert order == [(1, 0.25), (1, 0.5), (2, 0.25), (2, 0.5), (3, 0.25), (3, 0.5)]


def test_consecutive_failures_stop_with_a_clear_message(tiny_data, tmp_path, capsys):
    argv = _args(tiny_data, tmp_path, "--optimizers", "sgd", "--learning-rates", "1e12,1e13,1e14,1e15",
                 "--max-trials", "4")
    assert search.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "consecutive failures" in err[0] and "trials.csv" in err[0]
    table = pd.read_csv(tmp_path / "runs" / "grid" / "trials.csv")
    assert table.status.tolist() == ["FAILED"] * 3


def test_same_seed_same_trials_and_metrics(tiny_data, tmp_path):
    common = ["--tuner", "bayesian", "--data-dir", str(tiny_data), "--epochs", "2", "--max-trials", "3",
              "--initial-points", "2", "--seed", "5"]
    tables = []
    for run in ("a", "b"):
        assert search.main([*common, "--directory", str(tmp_path / run)]) == 0
        tables.append(pd.read_csv(tmp_path / run / "bayesian" / "trials.csv"))
    a, b = tables
    columns = ["optimizer", "learning_rate", "dropout_1", "dropout_2", "dropout_3", "epochs"]
    pd.testing.assert_frame_equal(a[columns], b[columns])
    for metric in ("val_accuracy", "val_loss"):
        assert (a[metric] - b[metric]).abs().max() <= 1e-6


def test_unwritable_directory_is_one_line_exit_2(tiny_data, tmp_path, capsys):
    (tmp_path / "file").write_text("a file, not a folder")
    refused(capsys, search.main, ["--data-dir", str(tiny_data), "--directory", str(tmp_path / "file" / "runs")],
            "cannot write to")


def test_project_without_config_json_is_not_silently_reused(tiny_data, tmp_path, capsys):
    project = tmp_path / "grid"
    project.mkdir()
    (project / "oracle.json").write_text("{}")
    refused(capsys, search.main, ["--data-dir", str(tiny_data), "--directory", str(tmp_path)], "--overwrite",
            "--project-name")


def test_time_left_fits_a_fixed_and_a_per_epoch_cost():
    from study.progress import TrialCost, seconds_left

    # Without in-trial timings: trials of 1 and 3 epochs costing 5 s + 2 s per epoch, fitted by a line.
    costs = [TrialCost(7, 1), TrialCost(7, 1), TrialCost(11, 3)]
    assert seconds_left(costs, 5, trials_left=2, budget_left=4) == pytest.approx(2 * 5 + 4 * 2)
    # Equal epochs and no timings: a mean cost per epoch; early stopping used half the budget so far.
    assert seconds_left([TrialCost(30, 3), TrialCost(30, 3)], 12, trials_left=4, budget_left=24) == pytest.approx(12 * 10)
    # With timings, the split is known from 1-epoch trials alone: 5 s fixed, 2 s per epoch.
    costs = [TrialCost(7, 1, 2.0), TrialCost(7.5, 1, 2.5), TrialCost(6.5, 1, 1.5)]
    assert seconds_left(costs, 3, trials_left=2, budget_left=6) == pytest.approx(2 * 5 + 6 * 2)
    assert seconds_left([], 0, trials_left=3, budget_left=9) is None
    assert seconds_left([TrialCost(5, 1, 2.0)], 1, trials_left=0, budget_left=0) is None
