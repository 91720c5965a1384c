"""study as a library: arrays in memory, a model as a Python object, keywords for flags, and the same files as the commands."""
from __future__ import annotations

import json

import keras
import keras_tuner
import numpy as np
import pandas as pd
import pytest
from conftest import make_dataset
from fakes import crafted, refused

import study
from study import report, retrain, search, tuners
from study.config import DataConfig


def _images(n: int, seed: int, size: int = 16, channels: int | None = 3):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    shape = (n, size, size) if channels is None else (n, size, size, channels)
    extra = (None,) * (len(shape) - 1)
    return (rng.integers(0, 60, shape) + 60 * y[(slice(None), *extra)]).astype(np.uint8), y


@pytest.fixture
def no_training(monkeypatch):
    def run_trial(self, trial, *args, **kwargs):
        score = 0.5 + 0.1 * trial.hyperparameters.values.get("learning_rate", 0)
        return {"val_accuracy": score, "val_loss": 1.0 - score}

    monkeypatch.setattr(tuners._StudyTuner, "run_trial", run_trial)


def test_arrays_are_named_by_their_content_in_either_pixel_form_and_shape():
    (x, y), (xt, yt) = _images(60, 0), _images(12, 1)
    as_uint8 = study.from_arrays(x, y, xt, yt, class_names=["a", "b", "c"])
    as_float = study.from_arrays(x / 255.0, y, xt.astype(np.float32) / 255, yt, class_names=["a", "b", "c"])
    assert as_uint8 == as_float and as_uint8.data_dir.startswith("arrays:sha1:")
    assert study.from_arrays(x, y, xt, yt, class_names=["x", "b", "c"]) != as_uint8  # the names are part of it
    changed = x.copy()
    changed[0, 0, 0, 0] ^= 1
    assert study.from_arrays(changed, y, xt, yt, class_names=["a", "b", "c"]) != as_uint8
    gray = study.from_arrays(*_images(60, 0, channels=None), *_images(12, 1, channels=None))
    assert (gray.image_size, gray.channels) == ((16, 16), 1)
    from study.data import load_dataset

    data = load_dataset(as_uint8)
    assert data.class_names == ("a", "b", "c") and (len(data.y_train), len(data.y_val), len(data.y_test)) == (48, 12, 12)
    np.testing.assert_array_equal(np.sort(data.x_test.reshape(12, -1), axis=0), np.sort(xt.reshape(12, -1), axis=0))


@pytest.mark.parametrize("change, message", [
    (lambda a: {**a, "x_train": a["x_train"] * 2.0}, "floats outside [0, 1]"),
    (lambda a: {**a, "y_train": a["y_train"][:-1]}, "59 labels for 60 images"),
    (lambda a: {**a, "x_test": a["x_test"][:, :8]}, "they must match"),
    (lambda a: {**a, "class_names": ["a", "b"]}, "class_names names 2 classes"),
    (lambda a: {**a, "x_train": a["x_train"][..., :2]}, "C 1 or 3"),
])
def test_arrays_that_cannot_be_images_are_refused_in_one_line(change, message):
    (x, y), (xt, yt) = _images(60, 0), _images(12, 1)
    given = change({"x_train": x, "y_train": y, "x_test": xt, "y_test": yt, "class_names": ["a", "b", "c"]})
    with pytest.raises(study.StudyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        study.from_arrays(**given)


def test_bad_keywords_raise_the_commands_own_one_line(tmp_path, capsys):
    s = study.Study(study.from_arrays(*_images(60, 0), *_images(12, 1)), directory=tmp_path / "t", output=tmp_path / "r")
    with pytest.raises(study.StudyError, match="search\\(\\) got an unknown keyword 'epoch'"):
        s.search(epoch=1)
    with pytest.raises(study.StudyError) as raised:
        s.report(epochs=0)
    line = refused(capsys, report.main, ["--epochs", "0", "--directory", str(tmp_path / "t"),
                                         "--output", str(tmp_path / "r")])
    assert line == f"python -m study.report: error: {raised.value}"
    small = study.Study(study.from_arrays(*_images(30, 0, size=8), *_images(6, 1, size=8)), directory=tmp_path / "t")
    with pytest.raises(study.StudyError, match="must be at least 10x10 for the notebook's CNN"):
        small.search(epochs=1)
    (tmp_path / "t").mkdir()
    with pytest.raises(study.StudyError, match="must be at least 10x10 for the notebook's CNN"):
        small.report(epochs=1)
    with pytest.raises(study.StudyError, match="model= takes"):
        study.Study(model=42)


def test_python_and_the_commands_write_the_same_results(tmp_path, monkeypatch):
    monkeypatch.setattr(retrain, "retrain", crafted(lambda hp, seed: 0.3 + 0.1 * (hp["optimizer"] == "rmsprop") +
                                                    0.05 * (seed % 2)))
    data = make_dataset(tmp_path / "data", classes=("a", "b", "c"), n_train=20, n_test=5)
    flags = ["--epochs", "1", "--max-trials", "2", "--batch-size", "16"]
    monkeypatch.chdir(tmp_path)
    assert search.main(["--data-dir", str(data), "--directory", "cli/runs", *flags]) == 0
    assert report.main(["--directory", "cli/runs", "--output", "cli/report", "--epochs", "1", "--seeds", "2",
                        "--confirm-seeds", "2", "--batch-size", "16"]) == 0
    s = study.Study(study.load_data(data), directory="py/runs", output="py/report")
    grid = s.search(epochs=1, max_trials=2, batch_size=16)
    rep = s.report(epochs=1, seeds=2, confirm_seeds=2, batch_size=16)
    cli, py = (pd.read_csv(tmp_path / side / "runs" / "grid" / "trials.csv").drop(columns="seconds")
               for side in ("cli", "py"))
    pd.testing.assert_frame_equal(py, cli)
    assert grid.trials["val_accuracy"].tolist() == cli["val_accuracy"].tolist()
    metrics = json.loads((tmp_path / "cli" / "report" / "metrics.json").read_text())
    for key in ("arms", "recommendation", "seeds"):
        assert json.dumps(rep.metrics[key], sort_keys=True) == json.dumps(metrics[key], sort_keys=True), key
    assert rep.comparison["name"].tolist() == [r["name"] for r in metrics["comparison"]]
    assert rep.recommendation == metrics["recommendation"] and "final_comparison" in rep.figures
    shown = rep._repr_html_()
    assert "<table" in shown and "<b>Keep the baseline</b>" in shown and "**" not in shown


def _own_build(hp, input_shape, num_classes):
    width = hp.Choice("width", [4, 8])
    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(width),
                             keras.layers.Dense(num_classes, activation="softmax")])


class _OwnHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        return _own_build(hp, (16, 16, 3), 3)


@pytest.mark.parametrize("model", [_own_build, _OwnHyperModel()], ids=["function", "hypermodel"])
def test_a_model_given_as_a_python_object_is_identified_resumed_and_reported(tmp_path, monkeypatch, no_training,
                                                                              model):
    monkeypatch.setattr(retrain, "retrain", crafted())
    data = study.from_arrays(*_images(60, 0), *_images(12, 1))
    s = study.Study(data, model=model, directory=tmp_path / "runs", output=tmp_path / "report")
    grid = s.search(epochs=1, optimizers=["adam"], learning_rates=[0.001], batch_size=16)
    assert set(grid.trials["width"]) == {4, 8} and grid.best is not None
    saved = json.loads((tmp_path / "runs" / "grid" / "config.json").read_text())
    assert saved["model"]["spec"].endswith(("_own_build", "_OwnHyperModel")) and len(saved["model"]["sha1"]) == 40
    assert saved["data"]["data_dir"] == data.data_dir
    s.search(epochs=1, optimizers=["adam"], learning_rates=[0.001], batch_size=16)  # the same study: resumed, nothing new
    other = study.Study(study.from_arrays(*_images(60, 5), *_images(12, 1)), model=model, directory=tmp_path / "runs")
    with pytest.raises(study.StudyError, match="different data"):
        other.search(epochs=1, optimizers=["adam"], learning_rates=[0.001], batch_size=16)
    rep = s.report(epochs=1, seeds=2, confirm_seeds=0, batch_size=16)
    assert set(rep.comparison["name"]) == {"baseline", "grid best"}  # no optimizer arms for a model of one's own
    assert rep.metrics["config"]["model"] == saved["model"]


def test_a_baseline_of_ones_own_is_what_every_arm_is_compared_with(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(retrain, "retrain", crafted())
    (tmp_path / "none").mkdir()
    argv = ["--data-dir", str(tiny_data), "--directory", str(tmp_path / "none"), "--output", str(tmp_path / "out"),
            "--epochs", "1", "--seeds", "2", "--confirm-seeds", "0"]
    assert report.main([*argv, "--baseline", "optimizer=sgd,learning_rate=0.05,batch_size=32",
                        "--compare-optimizers", "adam"]) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    # Every value it trains with, the batch size and the training defaults included.
    assert metrics["arms"]["baseline"]["hyperparameters"] == {
        "optimizer": "sgd", "learning_rate": 0.05, "dropout_1": 0.2, "dropout_2": 0.3, "dropout_3": 0.4,
        "batch_size": 32, "augmentation": "none", "schedule": "constant", "weight_decay": 0.0, "label_smoothing": 0.0}
    assert metrics["arms"]["adam"]["hyperparameters"]["learning_rate"] == 0.001 and set(metrics["arms"]) == \
        {"baseline", "adam"}
    text = (tmp_path / "out" / "report.md").read_text()
    assert "changed by --baseline optimizer=sgd, learning_rate=0.05, batch_size=32" in text
    assert "**Keep the baseline** (sgd, lr 0.05, dropout 0.2/0.3/0.4, batch_size=32)" in text
    for bad, message in ((["--baseline", "lr=0.1"], "no hyperparameter named lr"),
                         (["--baseline", "dropout_2=1"], "dropout_2 must be in [0, 1)"),
                         (["--baseline", "optimizer=nadam"], "unknown optimizer 'nadam'"),
                         (["--baseline", "batch_size=0"], "must be whole numbers > 0"),
                         (["--baseline", "optimizer"], "takes NAME=VALUE"),
                         (["--compare-optimizers", "adagrad"], "unknown optimizer 'adagrad'")):
        refused(capsys, report.main, [*argv[:5], str(tmp_path / "bad"), *bad], message)
    assert not (tmp_path / "bad").exists()
    assert report.main([*argv[:5], str(tmp_path / "alone"), "--epochs", "1", "--compare-optimizers", "none",
                        "--confirm-seeds", "0"]) == 0
    assert set(json.loads((tmp_path / "alone" / "metrics.json").read_text())["arms"]) == {"baseline"}


def test_load_data_is_what_the_data_flags_say():
    assert study.load_data("x.tar.gz", subset=500) == DataConfig(data_dir="x.tar.gz", subset=500)
    assert study.load_data() == DataConfig()
