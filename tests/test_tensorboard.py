"""`--tensorboard DIR`: every trial's per-epoch scalars and hyperparameters, read back as TensorBoard reads them."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.util import tensor_util

from study import search, tuners


def _argv(data: Path, tmp_path: Path, *extra: str, tensorboard: bool = True) -> list[str]:
    flag = ["--tensorboard", str(tmp_path / "tb")] if tensorboard else []
    return ["--data-dir", str(data), "--directory", str(tmp_path / "runs"), *flag, *extra]


def _events(run: Path) -> EventAccumulator:
    events = EventAccumulator(str(run), size_guidance={"tensors": 0})  # 0: keep every event
    events.Reload()
    return events


def _scalars(run: Path, tag: str) -> list[tuple[int, float]]:
    return [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in _events(run).Tensors(tag)]


def _session(run: Path) -> tuple[dict, str, int]:
    """The HParams plugin's record of one trial: its hyperparameters, group name and end status."""
    events = _events(run)
    start = hparams_metadata.parse_session_start_info_plugin_data(
        events.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    )
    end = hparams_metadata.parse_session_end_info_plugin_data(
        events.SummaryMetadata("_hparams_/session_end_info").plugin_data.content
    )
    values = {k: v.string_value if v.HasField("string_value") else v.number_value for k, v in start.hparams.items()}
    return values, start.group_name, end.status


def test_each_trial_logs_its_epochs_and_hyperparameters(tiny_data, tmp_path):
    assert search.main(_argv(tiny_data, tmp_path, "--epochs", "2", "--max-trials", "2")) == 0
    project = tmp_path / "runs" / "grid"
    table = pd.read_csv(project / "trials.csv", dtype={"trial_id": str})
    assert len(table) == 2
    for trial in table.itertuples():
        logs = tmp_path / "tb" / "grid" / trial.trial_id / "execution0"  # Keras Tuner's layout, per project
        history = json.loads((project / f"trial_{trial.trial_id}" / "history.json").read_text())["history"]
        for run, prefix in (("train", ""), ("validation", "val_")):
            for metric in ("loss", "accuracy"):
                scalars = _scalars(logs / run, f"epoch_{metric}")
                assert [step for step, _ in scalars] == [0, 1]
                assert [v for _, v in scalars] == pytest.approx(history[prefix + metric], abs=1e-6)
        assert [v for _, v in _scalars(logs / "train", "epoch_learning_rate")] == pytest.approx(
            [trial.learning_rate] * 2
        )
        values, group, status = _session(logs)
        assert values == pytest.approx({
            "optimizer": trial.optimizer, "learning_rate": trial.learning_rate,
            "dropout_1": trial.dropout_1, "dropout_2": trial.dropout_2, "dropout_3": trial.dropout_3,
        })
        assert group == f"grid/{trial.trial_id}"  # searches sharing DIR stay apart in the HParams view
        assert status == api_pb2.STATUS_SUCCESS
    # Cheap settings: no graph, histograms, images or profile, nothing per batch.
    tags = _events(tmp_path / "tb" / "grid" / table.trial_id[0] / "execution0" / "train").Tags()
    assert not tags["graph"] and not tags["histograms"] and not tags["images"]
    assert sorted(tags["tensors"]) == ["epoch_accuracy", "epoch_learning_rate", "epoch_loss"]
    assert not list((tmp_path / "tb").rglob("*.trace.json.gz")) and not list((tmp_path / "tb").rglob("plugins"))


def test_resume_keeps_the_logs_of_finished_trials_and_replaces_a_dead_attempts(tiny_data, tmp_path, capsys):
    tb = tmp_path / "tb" / "grid"
    assert search.main(_argv(tiny_data, tmp_path, "--epochs", "1", "--max-trials", "1")) == 0
    first = sorted(p.relative_to(tb) for p in tb.rglob("events.out.tfevents.*"))
    stamps = [(tb / p).stat().st_mtime_ns for p in first]
    assert len(first) == 3 and {p.parts[0] for p in first} == {"0"}
    # What a search killed during trial 1 leaves behind: that trial runs again from scratch.
    stale = tb / "1" / "execution0" / "train" / "events.out.tfevents.0.dead.0.v2"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")
    capsys.readouterr()
    assert search.main(_argv(tiny_data, tmp_path, "--epochs", "1", "--max-trials", "2")) == 0
    assert "resuming" in capsys.readouterr().out  # the flag does not make the project "changed"
    assert [(tb / p).stat().st_mtime_ns for p in first] == stamps
    assert not stale.exists() and len(list((tb / "1").rglob("events.out.tfevents.*"))) == 3
    # Without the flag the project resumes too; --overwrite deletes the trials' logs, nothing else there.
    (tb / "notes.txt").write_text("mine")
    assert search.main(_argv(tiny_data, tmp_path, "--epochs", "1", "--max-trials", "1", "--overwrite")) == 0
    assert sorted(p.name for p in tb.iterdir()) == ["0", "notes.txt"]
    capsys.readouterr()
    assert search.main(_argv(tiny_data, tmp_path, "--epochs", "1", "--max-trials", "1", tensorboard=False)) == 0
    assert "resuming" in capsys.readouterr().out


def test_no_summary_call_per_batch(tmp_path, monkeypatch):
    # Keras's callback calls tf.summary.scalar for each batch's metrics, writing nothing with
    # update_freq="epoch": 1 ms a batch.
    used = []
    monkeypatch.setattr(tuners.TensorBoard, "summary", property(lambda self: used.append(1)))
    callback = tuners.TensorBoard(tmp_path)
    callback.on_train_batch_end(0, {"loss": 2.3, "accuracy": 0.1})
    assert not used and callback.update_freq == "epoch"
