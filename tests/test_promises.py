"""What the README promises about seeds, resuming, the trials table and refused projects.

Each test fails when its promise is broken. Where training adds nothing to what is checked,
`no_training` makes every trial return a score at once (Keras Tuner's own tests override
`run_trial` the same way), and the search still runs through `study.search.main`, the code the
command line runs: parse_config, build_tuner, the project checks, the tables.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras_tuner
import numpy as np
import pandas as pd
import pytest
from fakes import refused

from study import search, tuners
from study.config import OPTIMIZERS
from study.hypermodel import StudyHyperModel
from study.results import HYPERPARAMETERS


@pytest.fixture
def no_training(monkeypatch) -> list[str]:
    """Trials score at once instead of training; the list fills with the ids of the trials run.

    The score depends on the values and on how many trials ran before it in this process, so a
    trial that is run again gets another score.
    """
    ran: list[str] = []

    def run_trial(self, trial, *args, **kwargs):
        ran.append(trial.trial_id)
        v = trial.hyperparameters.values
        score = 0.1 * OPTIMIZERS.index(v["optimizer"]) + 10 * v["learning_rate"] + 0.1 * v["dropout_1"]
        score += 0.01 * v["dropout_2"] + 0.001 * v["dropout_3"] + 1e-5 * len(ran)
        return {"val_accuracy": score, "val_loss": 1.0 - score}

    monkeypatch.setattr(tuners._StudyTuner, "run_trial", run_trial)
    return ran


def _trials(project: Path) -> pd.DataFrame:
    return pd.read_csv(project / "trials.csv", dtype={"trial_id": str})


def _sequence(project: Path) -> list[tuple]:
    """The hyperparameters of every trial, in trial order."""
    return list(_trials(project)[list(HYPERPARAMETERS)].itertuples(index=False, name=None))


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder` with its bytes and modification time."""
    files = (p for p in sorted(folder.rglob("*")) if p.is_file())
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) for p in files}


# --- Reproducibility: the seed decides the initial weights and the trial sequence ------------------


def _initial_kernels(seed: int) -> list[np.ndarray]:
    model = StudyHyperModel((32, 32, 3), 10, seed=seed).build(keras_tuner.HyperParameters())
    return [w for w in model.get_weights() if w.ndim > 1]  # biases start at zero whatever the seed


def test_seed_decides_the_initial_weights():
    first, again, other = _initial_kernels(1), _initial_kernels(1), _initial_kernels(2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not any(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_another_seed_trains_the_first_trial_differently(tiny_data, tmp_path):
    """The grid's first trial is the baseline whatever the seed: only weights, dropout and data order differ."""
    curves = {}
    for seed in ("1", "2"):
        argv = ["--data-dir", str(tiny_data), "--epochs", "1", "--max-trials", "1", "--seed", seed,
                "--directory", str(tmp_path / seed)]
        assert search.main(argv) == 0
        first = _trials(tmp_path / seed / "grid").trial_id[0]  # "0": Keras Tuner pads ids to max_trials' digits
        curves[seed] = json.loads((tmp_path / seed / "grid" / f"trial_{first}" / "history.json").read_text())["history"]
    for metric in ("loss", "val_loss"):
        assert abs(curves["1"][metric][0] - curves["2"][metric][0]) > 1e-6, metric


SAMPLING = {
    # 2 random trials, then one from the Gaussian process (about a second of CPU per proposal)
    "bayesian": ["--max-trials", "3", "--initial-points", "2"],
    # Keras Tuner's brackets for 3 epochs: random configurations, then promotions of the best
    "hyperband": ["--epochs", "3"],
}


@pytest.mark.parametrize("tuner", sorted(SAMPLING))
def test_seed_decides_the_trial_sequence(tiny_data, tmp_path, no_training, tuner):
    sequences = {}
    for run, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        argv = ["--tuner", tuner, "--data-dir", str(tiny_data), "--seed", seed, "--directory", str(tmp_path / run),
                *SAMPLING[tuner]]
        assert search.main(argv) == 0
        sequences[run] = _sequence(tmp_path / run / tuner)
    assert len(sequences["a"]) >= 3
    assert sequences["a"] == sequences["b"]
    # Not one coincidence: the trials sampled at random differ from the first one on.
    assert sequences["a"][0] != sequences["c"][0] and sequences["a"][1] != sequences["c"][1]


# --- Resuming: raising --max-trials runs exactly the new trials ----------------------------------


@pytest.mark.parametrize("tuner", ["grid", "bayesian"])
def test_raising_max_trials_runs_only_the_new_trials(tiny_data, tmp_path, no_training, tuner):
    # grid: 4 points; bayesian: the same two lists and its wide default dropouts
    common = ["--tuner", tuner, "--data-dir", str(tiny_data), "--directory", str(tmp_path),
              "--optimizers", "adam,sgd", "--learning-rates", "0.001,0.01"]
    project = tmp_path / tuner
    assert search.main([*common, "--max-trials", "2"]) == 0
    before = _trials(project)
    assert len(before) == 2 and no_training == before.trial_id.tolist()

    assert search.main([*common, "--max-trials", "3"]) == 0
    after = _trials(project)
    assert len(after) == 3 and set(after.status) == {"COMPLETED"}
    assert no_training[2:] == [after.trial_id[2]]  # one trial ran, the new one
    kept = ["trial_id", "status", *HYPERPARAMETERS, "val_accuracy", "val_loss", "best_epoch"]
    pd.testing.assert_frame_equal(after[kept].head(2), before[kept])
    if tuner == "grid":  # the next point in grid order, then the last one, each once
        assert _sequence(project)[2][:2] == ("sgd", 0.001)
        assert search.main([*common, "--max-trials", "5"]) == 0
        assert len(no_training) == 4 and [t[:2] for t in _sequence(project)] == [
            ("adam", 0.001), ("adam", 0.01), ("sgd", 0.001), ("sgd", 0.01)]


# --- The trials table: best_epoch and val_loss come from the epoch of the best val_accuracy -----


@pytest.mark.parametrize(
    "epochs, early_stopping, optimizer, learning_rates",
    [
        (5, "0", "adam", "0.001,0.01"),
        # Patience 1 and a large SGD step: val_loss rises early on the 100 tiny images, so a trial stops.
        (8, "1", "sgd", "0.1,0.03"),
    ],
    ids=["no-early-stopping", "early-stopping"],
)
def test_best_epoch_and_val_loss_match_each_history(tiny_data, tmp_path, epochs, early_stopping, optimizer,
                                                   learning_rates):
    argv = ["--data-dir", str(tiny_data), "--epochs", str(epochs), "--early-stopping", early_stopping,
            "--optimizers", optimizer, "--learning-rates", learning_rates, "--directory", str(tmp_path)]
    assert search.main(argv) == 0
    table = _trials(tmp_path / "grid")
    assert len(table) == 2 and set(table.status) == {"COMPLETED"}
    best_epochs, lengths = [], []
    for row in table.itertuples():
        record = json.loads((tmp_path / "grid" / f"trial_{row.trial_id}" / "history.json").read_text())
        curve = record["history"]
        best = int(np.argmax(curve["val_accuracy"]))  # the first epoch of the highest, as Keras Tuner scores
        assert row.best_epoch == best + 1
        assert row.val_accuracy == pytest.approx(curve["val_accuracy"][best], abs=1e-12)
        assert row.val_loss == pytest.approx(curve["val_loss"][best], abs=1e-12)
        assert row.epochs == record["epochs"] == len(curve["val_loss"])
        best_epochs.append(row.best_epoch)
        lengths.append(row.epochs)
    # Otherwise "first" or "last" epoch would pass as well: the best is somewhere in between.
    assert any(1 < b < n for b, n in zip(best_epochs, lengths, strict=True)), (best_epochs, lengths)
    if early_stopping == "0":
        assert lengths == [epochs, epochs]
    else:  # a trial stopped early (and went back to the weights of its lowest val_loss)
        assert min(lengths) < epochs, "no trial stopped early: this test no longer covers early stopping"


# --- A project is never reused with other data or training settings ------------------------------


@pytest.mark.parametrize(
    "change, named",
    [
        (["--subset", "50"], "data"),
        (["--data-dir", "COPY"], "data"),
        (["--split-seed", "7"], "data"),
        (["--epochs", "2"], "epochs"),
        (["--seed", "2"], "seed"),
        (["--batch-size", "32"], "batch_size"),
        (["--early-stopping", "5"], "early_stopping"),
    ],
    ids=["subset", "data-dir", "split-seed", "epochs", "seed", "batch-size", "early-stopping"],
)
def test_changed_data_or_training_is_refused_and_nothing_changes(tiny_data, tmp_path, capsys, no_training,
                                                                  change, named):
    common = ["--directory", str(tmp_path / "runs"), "--max-trials", "2"]
    assert search.main(["--data-dir", str(tiny_data), "--epochs", "1", *common]) == 0
    project = tmp_path / "runs" / "grid"
    before = _snapshot(project)
    capsys.readouterr()
    if change[-1] == "COPY":  # the same images elsewhere: still another source
        change = [change[0], str(shutil.copytree(tiny_data, tmp_path / "copy"))]
    argv = ["--data-dir", str(tiny_data), "--epochs", "1", *common, *change]  # the later flag wins
    refused(capsys, search.main, argv, "--overwrite", "--project-name", f"different {named}")
    assert _snapshot(project) == before
    assert len(no_training) == 2  # and nothing was trained


def test_raising_max_trials_past_a_power_of_ten_keeps_the_run_order(tiny_data, tmp_path, no_training):
    learning_rates = ["0.001", "0.002", "0.003", "0.004", "0.005", "0.006"]
    common = ["--data-dir", str(tiny_data), "--directory", str(tmp_path), "--optimizers", "adam,sgd",
              "--learning-rates", ",".join(learning_rates)]
    assert search.main([*common, "--max-trials", "9"]) == 0
    assert search.main([*common, "--max-trials", "12"]) == 0
    grid_order = [(o, float(lr)) for o in ("adam", "sgd") for lr in learning_rates]
    assert [t[:2] for t in _sequence(tmp_path / "grid")] == grid_order
