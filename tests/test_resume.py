"""SIGKILL a search at chosen moments, rerun the same command, and check that nothing is lost or repeated."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

RUNNER = Path(__file__).with_name("crash_runner.py")
ROOT = Path(__file__).resolve().parents[1]


def _run(point: str, argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(RUNNER), point, "--", *argv], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip


def _killed(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == -9, f"expected a SIGKILL, got {result.returncode}:\n{result.stderr[-3000:]}"


def _table(project: Path) -> pd.DataFrame:
    return pd.read_csv(project / "trials.csv", dtype={"trial_id": str})


def _configs(table: pd.DataFrame) -> list[tuple]:
    return sorted(map(tuple, table[["optimizer", "learning_rate", "dropout_1"]].values.tolist()))


def _seconds(project: Path, trial_id: str) -> float:
    return json.loads((project / f"trial_{trial_id}" / "history.json").read_text())["seconds"]


def test_grid_survives_sigkill_at_every_stage(tiny_data, tmp_path):
    argv = ["--tuner", "grid", "--data-dir", str(tiny_data), "--epochs", "1", "--directory", str(tmp_path),
            "--optimizers", "adam,sgd", "--learning-rates", "0.001,0.01", "--dropout1", "0.2"]
    project = tmp_path / "grid"

    _killed(_run("batch:2", argv))  # during the first trial: nothing completed yet
    # A trial has ended on disk, but the process dies before oracle.json records it.
    _killed(_run("written:trial.json:COMPLETED:1", argv))
    first = json.loads((project / "trial_0000" / "trial.json").read_text())
    assert first["status"] == "COMPLETED"
    seconds = _seconds(project, "0000")
    _killed(_run("trial-begin:2", argv))  # between trials
    _killed(_run("replacing:oracle.json:3", argv))  # while oracle.json is being written
    assert list(project.glob(".oracle.json.*.tmp"))  # the new version was written, not yet in place
    assert json.loads((project / "oracle.json").read_text())  # and the file read on resume is whole
    done = _run("none", argv)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming" in done.stdout

    table = _table(project)
    assert _configs(table) == sorted([("adam", 0.001, 0.2), ("adam", 0.01, 0.2), ("sgd", 0.001, 0.2), ("sgd", 0.01, 0.2)])
    assert set(table.status) == {"COMPLETED"}
    assert _seconds(project, "0000") == seconds  # the trial that ended was not run again


@pytest.mark.parametrize("tuner", ["bayesian", pytest.param("hyperband", marks=pytest.mark.slow)])
def test_sampling_tuners_resume_to_the_uninterrupted_result(tiny_data, tmp_path, tuner):
    common = ["--tuner", tuner, "--data-dir", str(tiny_data), "--epochs", "2" if tuner == "hyperband" else "1",
              "--learning-rates", "0.001,0.003,0.01", "--dropout1", "0.1,0.2,0.3", "--dropout2", "0.3",
              "--dropout3", "0.4"]
    if tuner == "bayesian":
        common += ["--max-trials", "4", "--initial-points", "2"]
    reference = _run("none", [*common, "--directory", str(tmp_path / "reference")])
    assert reference.returncode == 0, reference.stderr[-3000:]

    argv = [*common, "--directory", str(tmp_path / "crashed")]
    _killed(_run("batch:2", argv))
    _killed(_run("trial-begin:2", argv))
    _killed(_run("written:trial.json:COMPLETED:1", argv))
    done = _run("none", argv)
    assert done.returncode == 0, done.stderr[-3000:]

    expected, actual = _table(tmp_path / "reference" / tuner), _table(tmp_path / "crashed" / tuner)
    assert _configs(actual) == _configs(expected)
    assert set(actual.status) == {"COMPLETED"}
    pd.testing.assert_series_equal(actual.val_accuracy, expected.val_accuracy, atol=1e-6)


def test_ctrl_c_says_how_to_resume(tiny_data, tmp_path, monkeypatch, capsys):
    from study import hypermodel, search

    def interrupt(self, hp, model, *args, **kwargs):  # Ctrl-C arrives in the main thread, mid-training
        raise KeyboardInterrupt

    monkeypatch.setattr(hypermodel.StudyHyperModel, "fit", interrupt)
    argv = ["--data-dir", str(tiny_data), "--epochs", "1", "--directory", str(tmp_path)]
    assert search.main(argv) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err


def test_hyperband_resumed_without_checkpoints_trains_the_round_from_scratch(tiny_data, tmp_path, capsys):
    """Checkpoints are never committed: a search resumed in a fresh checkout must not fail its next rounds."""
    from study import search

    argv = ["--tuner", "hyperband", "--data-dir", str(tiny_data), "--epochs", "3", "--directory", str(tmp_path),
            "--early-stopping", "0", "--max-trials", "3"]
    assert search.main(argv) == 0  # the first bracket's first round: 3 trials of 1 epoch
    project = tmp_path / "hyperband"
    for checkpoint in project.glob("trial_*/checkpoint*"):
        checkpoint.unlink()
    capsys.readouterr()
    argv[argv.index("--max-trials") + 1] = "4"  # its second round: the best of them, up to epoch 3
    assert search.main(argv) == 0
    assert "is gone; this round trains from scratch for all 3 epochs" in capsys.readouterr().out
    table = _table(project)
    continued = table[table["tuner/trial_id"].notna()]
    assert len(continued) == 1 and set(table.status) == {"COMPLETED"}
    record = json.loads((project / f"trial_{continued.trial_id.iloc[0]}" / "history.json").read_text())
    assert record["initial_epoch"] == 0 and len(record["history"]["val_accuracy"]) == 3
