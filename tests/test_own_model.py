"""Your own model: `--model` for search and report, refused when its code changed, bad functions in one line,
and the answer as model files that reproduce the report's predictions."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes import refused

from study import report, retrain, search
from study.config import DataConfig
from study.data import load_dataset
from study.training import predict_proba

ROOT = Path(__file__).resolve().parents[1]

TINY_MODEL = '''
import keras


def build(hp, input_shape, num_classes):
    width = hp.Int("width", 4, 8, step=4, default=4)
    batch_norm = hp.Boolean("batch_norm", default=False)
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Conv2D(width, 3, activation="relu")(inputs)
    if batch_norm:
        x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
'''


@pytest.fixture
def tiny_model(tmp_path) -> str:
    path = tmp_path / "tiny_model.py"
    path.write_text(TINY_MODEL)
    return f"{path}:build"


def _search(data, tmp_path, *extra):
    return ["--data-dir", str(data), "--epochs", "1", "--directory", str(tmp_path / "runs"), *extra]


def test_search_and_report_of_a_model_given_as_a_file(tiny_data, tiny_model, tmp_path, capsys):
    argv = _search(tiny_data, tmp_path, "--model", tiny_model, "--optimizers", "adam", "--learning-rates", "0.01")
    assert search.main(argv) == 0
    project = tmp_path / "runs" / "grid"
    table = pd.read_csv(project / "trials.csv")
    # The model's own hyperparameters join the grid beside study's optimizer and learning rate: 2 x 2 points.
    assert len(table) == 4 and set(table.status) == {"COMPLETED"}
    assert sorted(zip(table.width, table.batch_norm)) == [(4, False), (4, True), (8, False), (8, True)]
    assert "dropout_1" not in table
    saved = json.loads((project / "config.json").read_text())
    assert saved["model"]["spec"] == tiny_model and len(saved["model"]["sha1"]) == 40
    capsys.readouterr()

    out = tmp_path / "reports"
    assert report.main(["--directory", str(tmp_path / "runs"), "--output", str(out), "--epochs", "1",
                        "--seeds", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    training = {"batch_size": 64, "augmentation": "none", "schedule": "constant", "weight_decay": 0.0,
                "label_smoothing": 0.0}  # every value it trains with, recorded
    assert metrics["arms"]["baseline"]["hyperparameters"] == {
        "optimizer": "adam", "learning_rate": 0.001, "width": 4, "batch_norm": False, **training}  # model's defaults
    best = metrics["arms"]["grid best"]["hyperparameters"]
    assert set(best) == {"optimizer", "learning_rate", "width", "batch_norm", *training} and isinstance(best["width"], int)
    text = (out / "report.md").read_text()
    assert "width=" in text and "Against the notebook" not in text
    assert not (out / "figures" / "dropout_grid.png").exists()  # the dropout figure is the notebook CNN's


def test_changed_model_code_is_refused(tiny_data, tiny_model, tmp_path, capsys):
    argv = _search(tiny_data, tmp_path, "--model", tiny_model, "--max-trials", "1")
    assert search.main(argv) == 0
    path = Path(tiny_model.rsplit(":", 1)[0])
    path.write_text(TINY_MODEL.replace('default=4)', 'default=8)'))
    capsys.readouterr()
    refused(capsys, search.main, argv, "model", "--overwrite", "--project-name")
    refused(capsys, search.main, _search(tiny_data, tmp_path, "--max-trials", "1"), "model")  # the notebook CNN


BROKEN = {
    "missing file": (None, "no such file"),
    "no function": ("def other(hp, input_shape, num_classes):\n    pass\n", "has no function build"),
    "import error": ("import not_a_module_anywhere\n", "cannot import"),
    "raises": ("def build(hp, input_shape, num_classes):\n    raise ValueError('bad width')\n",
               "building the model failed (ValueError: bad width)"),
    "not a model": ("def build(hp, input_shape, num_classes):\n    return 42\n", "returned int, not a keras.Model"),
    "wrong input": (TINY_MODEL.replace("shape=input_shape", "shape=(8, 8, 3)"), "takes inputs of shape (8, 8, 3)"),
    "wrong output": (TINY_MODEL.replace("Dense(num_classes", "Dense(3"), "outputs shape (3,)"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_model_function_is_one_line_before_any_trial(tiny_data, tmp_path, capsys, case):
    source, message = BROKEN[case]
    path = tmp_path / "model.py"
    if source is not None:
        path.write_text(source)
    err = refused(capsys, search.main, _search(tiny_data, tmp_path, "--model", f"{path}:build"), message, str(path))
    assert err.startswith("python -m study.search: error: --model"), err
    assert not list((tmp_path / "runs").glob("*/trial_*"))


def test_dropout_flags_are_the_notebook_cnns_and_module_form_works(tiny_data, tiny_model, tmp_path, capsys,
                                                                   monkeypatch):
    refused(capsys, search.main, _search(tiny_data, tmp_path, "--model", tiny_model, "--dropout1", "0.1"),
            "apply to the notebook's CNN only")
    monkeypatch.syspath_prepend(str(Path(tiny_model.rsplit(":", 1)[0]).parent))
    argv = _search(tiny_data, tmp_path, "--model", "tiny_model:build", "--max-trials", "1", "--project-name", "m")
    assert search.main(argv) == 0
    assert json.loads((tmp_path / "runs" / "m" / "config.json").read_text())["model"]["spec"] == "tiny_model:build"
    refused(capsys, search.main, _search(tiny_data, tmp_path, "--model", "no_such_module_here:build"),
            "no module named no_such_module_here")


# The run's weights file holds its optimizer's state too, which a fresh model does not need.
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_model_files_reproduce_the_reports_predictions_in_a_fresh_process(tiny_data, tmp_path):
    out = tmp_path / "reports"
    (tmp_path / "none").mkdir()
    argv = ["--data-dir", str(tiny_data), "--directory", str(tmp_path / "none"), "--output", str(out),
            "--epochs", "2", "--seeds", "2", "--confirm-seeds", "1", "--final-fit"]
    assert report.main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    pick = metrics["recommendation"]["name"]
    files = {m["file"] for m in metrics["models"]}
    arms = list(dict.fromkeys([pick, "baseline"]))
    # The race's seeds 1-2 and the confirmation's seed 3, of the recommendation and the baseline.
    assert files == {f"{a}-seed{s}.keras" for a in arms for s in (1, 2, 3)} | {"final.keras"}
    assert "## The answer as model files" in (out / "report.md").read_text()
    run = next(r for r in metrics["models"] if r["file"] == "baseline-seed2.keras")
    saved_path = next(p for p in (out / "runs").glob("seed2-*.json")
                      if json.loads(p.read_text())["hyperparameters"] == run["hyperparameters"])
    saved = json.loads(saved_path.read_text())
    script = (
        "import json, sys, keras, numpy as np\n"
        "from study.config import DataConfig\nfrom study.data import load_dataset\n"
        f"data = load_dataset(DataConfig(data_dir={str(tiny_data)!r}))\n"
        f"model = keras.saving.load_model({str(out / 'models' / 'baseline-seed2.keras')!r})\n"
        "assert data.x_test.dtype == np.uint8\n"
        "print(json.dumps(model.predict(data.x_test, verbose=0).tolist()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    proba = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    assert proba.argmax(axis=1).tolist() == saved["y_pred"]
    # The same probabilities as the run's weights on study's own path (uint8 scaled by / 255 batch by batch).
    data = load_dataset(DataConfig(data_dir=str(tiny_data)))
    trained = retrain.initial_model(data.input_shape, data.num_classes, run["hyperparameters"], 2)
    trained.load_weights(saved_path.with_suffix(".weights.h5"))
    np.testing.assert_allclose(proba, predict_proba(trained, data.x_test), rtol=0, atol=1e-6)

    # The final fit changes no reported number.
    (out / "models").rename(tmp_path / "kept_models")
    without = tmp_path / "without"
    assert report.main([*argv[:argv.index("--output")], "--output", str(without), "--epochs", "2",
                        "--seeds", "2", "--confirm-seeds", "1"]) == 0
    again = json.loads((without / "metrics.json").read_text())
    numbers = ("test_accuracies", "val_accuracies", "diff_vs_baseline", "p_value", "ci_low", "ci_high")
    assert [[r[k] for k in numbers] for r in again["comparison"]] == [[r[k] for k in numbers]
                                                                     for r in metrics["comparison"]]
    assert "final.keras" not in {m["file"] for m in again["models"]}
    assert np.isclose(metrics["recommendation"]["test_accuracy"], again["recommendation"]["test_accuracy"])


def test_a_distributed_search_imports_the_same_model_in_every_process(tiny_data, tiny_model, tmp_path):
    from test_distributed import _free_port, _start, _wait

    argv = _search(tiny_data, tmp_path, "--model", tiny_model, "--optimizers", "adam", "--learning-rates", "0.01",
                   "--oracle", f"127.0.0.1:{_free_port()}")
    chief = _start([*argv, "--role", "chief"], tmp_path / "chief.log")
    worker = _start([*argv, "--role", "worker", "--worker-id", "0"], tmp_path / "worker.log")
    _wait(worker, tmp_path / "worker.log")
    _wait(chief, tmp_path / "chief.log")
    table = pd.read_csv(tmp_path / "runs" / "grid" / "trials.csv")
    assert len(table) == 4 and set(table.status) == {"COMPLETED"} and {"width", "batch_norm"} <= set(table)
