"""Training hyperparameters (batch size, augmentation, schedule, weight decay, label smoothing): the baseline and
studies made before them unchanged, each applied by the training path, and bad values refused before any trial."""
from __future__ import annotations

import importlib.util
import json
import math

import keras
import keras_tuner
import numpy as np
import pandas as pd
import pytest
from fakes import refused

from study import arms as arms_lib
from study import augment, export, report, search
from study.config import BASELINE, SearchConfig, SearchSpace
from study.hypermodel import StudyHyperModel
from study.model import ModelFunction, SmoothedSparseCrossentropy, build_model, notebook_cnn
from study.recipe import canonical, recipe
from study.training import Batches, DeviceBatches, fit

needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")


def _data(n=48, size=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8),
            rng.integers(0, classes, size=n).astype(np.int32))


# --- the baseline and earlier studies stay what they were ----------------------------------------------

def test_without_training_flags_space_and_baseline_are_unchanged():
    assert SearchSpace().values().keys() == BASELINE.hyperparameters().keys()
    assert SearchSpace.for_tuner("bayesian").values().keys() == BASELINE.hyperparameters().keys()
    assert BASELINE.training() == {"batch_size": 64, "augmentation": "none", "schedule": "constant",
                                   "weight_decay": 0.0, "label_smoothing": 0.0}
    hp = keras_tuner.HyperParameters()
    model = StudyHyperModel((32, 32, 3), 10).build(hp)
    assert hp.values == BASELINE.hyperparameters()
    assert model.loss == "sparse_categorical_crossentropy" and model.optimizer.weight_decay is None


def test_a_config_json_written_before_them_resumes():
    saved = SearchConfig().to_dict()
    for name in SearchSpace().training():
        del saved["space"][f"{name}s"]
    old = SearchConfig.from_json(json.dumps(saved))
    assert SearchConfig().differences(old) == []
    assert SearchConfig(space=SearchSpace(schedules=("constant", "cosine"))).differences(old) == ["space"]


def test_canonical_drops_only_the_defaults():
    baseline = BASELINE.hyperparameters()
    assert canonical({**baseline, **BASELINE.training()}) == baseline
    assert canonical({**baseline, "batch_size": 64}, batch_size=128) == {**baseline, "batch_size": 64}
    assert canonical({**baseline, "augmentation": "flip"}) == {**baseline, "augmentation": "flip"}
    assert recipe({"batch_size": 32, "schedule": "cosine"}, 64) == (32, "none", "cosine", 0.0, 0.0)
    assert recipe({}, 128).batch_size == 128


# --- augmentation ---------------------------------------------------------------------------------------

def test_flip_and_translate_move_pixels_with_zeros_shifted_in():
    x = np.arange(2 * 5 * 6 * 1, dtype=np.uint8).reshape(2, 5, 6, 1) + 1
    d = augment.Draws(np.array([True, False]), np.array([[0, 0], [1, -2]]), augment.PAD)
    out = augment.apply(x, d)
    np.testing.assert_array_equal(out[0], x[0, :, ::-1])
    expected = np.zeros_like(x[1])
    expected[1:, :4] = x[1, :4, 2:]  # down one row, left two columns
    np.testing.assert_array_equal(out[1], expected)


def test_augmented_batches_depend_on_seed_and_epoch_only():
    x, y = _data(20)
    a = Batches(x, y, 8, shuffle=True, seed=3, augmentation="flip_translate")
    b = Batches(x, y, 8, shuffle=True, seed=3, augmentation="flip_translate")
    plain = Batches(x, y, 8, shuffle=True, seed=3)
    first = [a[i][0] for i in range(len(a))]
    for i in range(len(a)):
        np.testing.assert_array_equal(first[i], b[i][0])
        np.testing.assert_array_equal(a[i][1], plain[i][1])  # same order and labels as without augmentation
    assert any(not np.array_equal(first[i], plain[i][0]) for i in range(len(a)))
    a.on_epoch_end()
    assert not all(np.array_equal(first[i], a[i][0]) for i in range(len(a)))
    # Other batch sizes, same seed: every image gets the same flip and shift.
    draws = augment.draws("flip_translate", 20, 3, 0)
    assert draws.flips.tolist() == augment.draws("flip_translate", 20, 3, 0).flips.tolist()
    assert draws.shifts.tolist() != augment.draws("flip_translate", 20, 4, 0).shifts.tolist()
    assert np.abs(draws.shifts).max() <= augment.PAD
    assert augment.draws("flip", 20, 3, 0).shifts.max() == 0 and augment.draws("none", 20, 3, 0) is None


def test_every_image_gets_the_same_draw_and_the_same_place_in_the_order_whatever_the_batch_size():
    """A draw depends on the seed, the epoch and the image: runs of one seed at batch 8 and 16 pair image by image."""
    x, y = _data(40)
    seen = {}
    for size in (8, 16, 40):
        batches = Batches(x, y, size, shuffle=True, seed=3, augmentation="flip_translate")
        epochs = []
        for _ in range(2):
            drawn = {}
            for i in range(len(batches)):
                idx, d = batches.indices(i), batches.batch_draws(i)
                images = batches[i][0]
                for k, image in enumerate(idx.tolist()):
                    drawn[image] = (bool(d.flips[k]), tuple(d.shifts[k].tolist()))
                    expected = augment.apply(x[[image]], augment.Draws(d.flips[k:k + 1], d.shifts[k:k + 1], d.pad))
                    np.testing.assert_array_equal(images[k], expected[0].astype(np.float32) / np.float32(255.0))
            epochs.append((batches._order.tolist(), drawn))
            batches.on_epoch_end()
        seen[size] = epochs
    assert sorted(seen[8][0][1]) == list(range(40))  # every image drawn once an epoch
    assert seen[8] == seen[16] == seen[40]  # the same order and the same draw per image, epoch by epoch
    assert seen[8][0][1] != seen[8][1][1]  # another epoch, other draws


@needs_jax
def test_device_batches_augment_the_same_pixels(monkeypatch):
    x, y = _data(20)
    host = Batches(x, y, 8, shuffle=True, seed=3, augmentation="flip_translate")
    device = DeviceBatches(x, y, 8, shuffle=True, seed=3, augmentation="flip_translate")
    for _ in range(2):
        for i in range(len(host)):
            np.testing.assert_array_equal(np.asarray(device[i][0]), host[i][0])
        host.on_epoch_end()
        device.on_epoch_end()


class _Seen(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def test_fit_augments_training_batches_only(monkeypatch):
    seen = []
    original = augment.apply
    monkeypatch.setattr(augment, "apply", lambda images, d: seen.append(images.copy()) or original(images, d))
    x, y = _data(40)
    x_val, y_val = _data(16, seed=1)
    keras.utils.set_random_seed(0)
    model = build_model((12, 12, 3), 3)
    fit(model, x, y, validation_data=(x_val, y_val), epochs=1, batch_size=8, verbose=0, augmentation="flip")
    images = np.concatenate(seen)
    train = {row.tobytes() for row in x}
    assert all(row.tobytes() in train for row in images)  # no validation image is ever augmented
    assert {row.tobytes() for row in images} == train  # every training image is


# --- schedule, weight decay, label smoothing, batch size ---------------------------------------------------

def test_cosine_schedule_decays_to_zero_and_is_in_the_history():
    x, y = _data(32)
    keras.utils.set_random_seed(0)
    model = build_model((12, 12, 3), 3, {"learning_rate": 0.01})
    history = fit(model, x, y, epochs=4, batch_size=16, verbose=0, schedule="cosine").history
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    np.testing.assert_allclose(history["learning_rate"], expected, rtol=1e-6)
    constant = fit(build_model((12, 12, 3), 3), x, y, epochs=1, batch_size=16, verbose=0).history
    assert "learning_rate" not in constant


def test_weight_decay_and_label_smoothing_are_compiled_in():
    model = build_model((12, 12, 3), 3, {"weight_decay": 5e-4, "label_smoothing": 0.1})
    assert math.isclose(model.optimizer.weight_decay, 5e-4)
    assert isinstance(model.loss, SmoothedSparseCrossentropy)
    y_true, y_pred = np.array([0, 2]), np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    target = np.full((2, 3), 0.1 / 3) + 0.9 * np.eye(3)[y_true]
    expected = -np.mean(np.sum(target * np.log(y_pred), axis=1))
    assert math.isclose(float(model.loss(y_true, y_pred)), expected, rel_tol=1e-5)
    restored = SmoothedSparseCrossentropy.from_config(model.loss.get_config())
    assert (restored.label_smoothing, restored.num_classes) == (0.1, 3)


def _declares_training(hp, input_shape, num_classes):
    hp.Choice("batch_size", [10])
    hp.Choice("weight_decay", [1e-3])
    return notebook_cnn(hp, input_shape, num_classes)


def test_a_model_function_declares_them_and_the_training_path_applies_them():
    x, y = _data(40)
    hypermodel = StudyHyperModel((12, 12, 3), 3, model=ModelFunction(_declares_training, "m:f", "0"), epochs=1)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert hp.values["batch_size"] == 10 and math.isclose(model.optimizer.weight_decay, 1e-3)
    seen = _Seen()
    hypermodel.fit(hp, model, x, y, callbacks=[seen], verbose=0)
    assert seen.batches == 4  # 40 images in batches of 10, not the search's 64


def test_flags_declare_them_in_the_space_in_order():
    space = SearchSpace(batch_sizes=(32, 64), augmentations=("none", "flip"), schedules=("cosine",),
                        weight_decays=(0.0, 1e-4), label_smoothings=(0.1,))
    hp = keras_tuner.HyperParameters()
    model = StudyHyperModel((12, 12, 3), 3, space=space).build(hp)
    assert [p.name for p in hp.space][5:] == ["batch_size", "augmentation", "schedule", "weight_decay",
                                             "label_smoothing"]
    assert hp.values["batch_size"] == 64 and hp.values["augmentation"] == "none"  # the notebook's, first
    assert model.optimizer.weight_decay is None and isinstance(model.loss, SmoothedSparseCrossentropy)


# --- the commands -----------------------------------------------------------------------------------------

def _args(data, tmp_path, *extra):
    return ["--data-dir", str(data), "--epochs", "2", "--directory", str(tmp_path / "runs"), "--optimizers", "adam",
            "--learning-rates", "0.001", *extra]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--batch-sizes", "32,0"], "--batch-sizes must be whole numbers > 0"),
        (["--batch-sizes", "32,101"], "--batch-sizes 101 is larger than the 80 training images"),
        (["--batch-size", "200"], "--batch-size 200 is larger than the 80 training images"),
        (["--augmentations", "none,rotate"], "unknown augmentation 'rotate' in --augmentations"),
        (["--schedules", "step"], "unknown schedule 'step' in --schedules"),
        (["--weight-decays", "0,-0.0001"], "--weight-decays must be >= 0"),
        (["--label-smoothings", "0,1"], "--label-smoothings must be in [0, 1)"),
        (["--batch-sizes", "x"], "comma-separated list"),
    ],
)
def test_bad_values_are_one_line_exit_2_before_any_trial(tiny_data, tmp_path, capsys, extra, message):
    refused(capsys, search.main, _args(tiny_data, tmp_path, *extra), message)
    assert not (tmp_path / "runs").exists()


def test_search_shows_them_resume_refuses_a_change_and_report_trains_each_its_way(tiny_data, tmp_path, capsys):
    argv = _args(tiny_data, tmp_path, "--batch-sizes", "16,64", "--schedules", "constant,cosine",
                 "--augmentations", "flip_translate")
    assert search.main(argv) == 0
    trials = pd.read_csv(tmp_path / "runs" / "grid" / "trials.csv")
    assert {"batch_size", "augmentation", "schedule"} <= set(trials.columns) and len(trials) == 4
    assert "weight_decay" not in trials.columns  # not searched: not a hyperparameter
    assert set(zip(trials["batch_size"], trials["schedule"])) == {(16, "constant"), (16, "cosine"),
                                                                  (64, "constant"), (64, "cosine")}
    changed = [a if a != "constant,cosine" else "cosine" for a in argv]
    refused(capsys, search.main, changed, "different space")

    out = tmp_path / "report"
    assert report.main(["--directory", str(tmp_path / "runs"), "--output", str(out), "--seeds", "1",
                        "--confirm-seeds", "0", "--epochs", "2"]) == 0
    runs = [json.loads(p.read_text()) for p in (out / "runs").glob("seed*.json")]
    best = [r for r in runs if "augmentation" in r["hyperparameters"]]
    assert len(best) == 1 and best[0]["hyperparameters"]["augmentation"] == "flip_translate"
    assert ("learning_rate" in best[0]["history"]) == (best[0]["hyperparameters"].get("schedule") == "cosine")
    baseline = [r for r in runs if r["hyperparameters"] == BASELINE.hyperparameters()]
    assert len(baseline) == 1  # the baseline's recipe is not named, and trained once
    # Every arm's table row states the values it trained with: the baseline's batch 64 and no augmentation, not
    # blanks or NaN, and batch sizes as integers.
    for table in ("final_comparison", "runs"):
        frame = pd.read_csv(out / "tables" / f"{table}.csv").set_index("configuration")
        assert frame.loc[["baseline"], "batch_size"].tolist() == [64] and frame["batch_size"].dtype.kind == "i"
        assert frame.loc[["baseline"], "augmentation"].tolist() == ["none"]
    text = (out / "report.md").read_text()
    final = text.split("## Final comparison")[1].split("## Confirmation")[0]
    assert "nan" not in final.lower() and "batch_size=64" in final and ".0000" not in final
    assert "1 trials" not in text and "about 0 min" not in capsys.readouterr().out


def test_a_best_trial_with_the_notebooks_recipe_is_the_baseline_arm(tmp_path):
    from study.records import Search

    best = {**BASELINE.hyperparameters(), **BASELINE.training(), "val_accuracy": 0.5}
    trials = pd.DataFrame([{"trial_id": "0", "status": "COMPLETED", **best}])
    searched = Search("s", SearchConfig(), trials, trials.iloc[0], tmp_path)
    arms = arms_lib.plan([searched], BASELINE.hyperparameters())
    assert arms["s best"] == arms["baseline"] == BASELINE.hyperparameters()
    assert arms_lib.jobs(arms, report.ReportConfig(seeds=2)).count((arms["baseline"], 1)) == 1
    wider = arms_lib.plan([searched], BASELINE.hyperparameters(), batch_size=128)
    assert wider["s best"] == {**BASELINE.hyperparameters(), "batch_size": 64}  # not what --batch-size 128 trains


def test_the_window_copy_and_the_gather_give_the_same_pixels():
    x, _ = _data(64, size=10)
    d = augment.draws("flip_translate", 64, 5, 2)
    rows, cols = augment.source_indices(d, 10, 10)
    padded = np.pad(x, ((0, 0), (4, 4), (4, 4), (0, 0)))
    gathered = padded[np.arange(64)[:, None, None], rows[:, :, None], cols[:, None, :]]
    np.testing.assert_array_equal(augment.apply(x, d), gathered)
    assert d.flips.any() and (d.shifts != 0).any()


def test_a_model_file_of_a_smoothed_augmented_configuration_loads_without_study(tmp_path):
    import os
    import subprocess
    import sys

    hp = {**BASELINE.hyperparameters(), "label_smoothing": 0.1, "weight_decay": 0.01, "augmentation": "flip"}
    x, y = _data(32)
    keras.utils.set_random_seed(0)
    model = build_model((12, 12, 3), 3, hp)
    fit(model, x, y, epochs=1, batch_size=16, verbose=0, augmentation="flip")
    model.save_weights(tmp_path / "w.weights.h5")
    entry = {"file": "m.keras", "arm": "a", "seed": 1, "hyperparameters": hp, "test_accuracy": 0.5,
             "weights": tmp_path / "w.weights.h5"}
    export.export_models(tmp_path / "models", [entry], None, (12, 12, 3), 3)
    np.save(tmp_path / "x.npy", x)
    code = ("import sys, numpy as np, keras; m = keras.models.load_model(sys.argv[1]); "
            "print(' '.join(type(l).__name__ for l in m.layers[-1].layers)); "
            "np.save(sys.argv[2], m.predict(np.load(sys.argv[3]), verbose=0))")
    env = {**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "models" / "m.keras"), str(tmp_path / "p.npy"),
                           str(tmp_path / "x.npy")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    layers = done.stdout.split()
    assert "Conv2D" in layers and not any(name.startswith("Random") for name in layers)  # no augmentation layer
    expected = model.predict(x.astype(np.float32) / np.float32(255.0), verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, atol=1e-6)


def test_importance_and_parallel_coordinates_show_them():
    from study import insights

    rng = np.random.default_rng(0)
    rows = [{"trial_id": str(i), "status": "COMPLETED", "optimizer": "adam", "learning_rate": 1e-3,
             "batch_size": int(rng.choice([32, 64, 128])), "augmentation": str(rng.choice(["none", "flip"])),
             "weight_decay": float(rng.choice([0.0, 0.01])), "val_accuracy": float(rng.uniform(0.5, 0.7)),
             "val_loss": 1.0, "best_epoch": 1, "epochs": 2, "seconds": 1.0, "error": ""} for i in range(12)]
    frame = pd.DataFrame(rows)
    axes = [a.name for a in insights.parallel_coordinates(frame).axes]
    assert axes == ["batch_size", "augmentation", "weight_decay", "val_accuracy"]
    importance = insights.hyperparameter_importance(frame)
    assert set(importance.importances.index) == {"batch_size", "augmentation", "weight_decay"}
