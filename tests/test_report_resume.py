"""The report resumes: every retraining is saved as it ends, a rerun trains only what is missing."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study import report, retrain, stats
from fakes import crafted

RUNNER = Path(__file__).with_name("crash_runner.py")
ROOT = Path(__file__).resolve().parents[1]


def _report(point: str, argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(RUNNER), point, "--", "report", *argv], capture_output=True,
                          text=True, env=env, timeout=600)


def _argv(data: Path, tmp_path: Path, out: str, *extra: str) -> list[str]:
    (tmp_path / "searches").mkdir(exist_ok=True)
    # No confirmation unless asked for: these tests count the race's retrainings (test_report_racing.py confirms).
    return ["--data-dir", str(data), "--directory", str(tmp_path / "searches"), "--output", str(tmp_path / out),
            "--epochs", "1", "--confirm-seeds", "0", *extra]


def _numbers(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    return {row["name"]: [row[k] for k in ("test_accuracy", "test_loss", "final_val_accuracy", "diff_vs_baseline")]
            for row in metrics["comparison"]}


def _trained(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "] retraining seed" in line]


def test_sigkill_after_the_second_retraining_then_rerun_trains_only_the_rest(tiny_data, tmp_path):
    whole = _report("none", _argv(tiny_data, tmp_path, "whole", "--seeds", "2"))
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert len(_trained(whole.stdout)) == 6  # baseline, sgd, rmsprop x 2 seeds

    argv = _argv(tiny_data, tmp_path, "crashed", "--seeds", "2")
    killed = _report("run-saved:2", argv)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert len(list((tmp_path / "crashed" / "runs").glob("*.json"))) == 2 and not (tmp_path / "crashed" / "report.md").exists()
    rerun = _report("none", argv)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "2 of 6 already saved" in rerun.stdout and len(_trained(rerun.stdout)) == 4
    expected, got = _numbers(tmp_path / "whole"), _numbers(tmp_path / "crashed")
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-6, err_msg=name)

    # Nothing left to train: rendering only.
    again = _report("none", argv)
    assert again.returncode == 0 and "6 of 6 already saved" in again.stdout and not _trained(again.stdout)


def test_more_seeds_later_train_only_the_new_seeds_and_other_settings_are_not_reused(tiny_data, tmp_path, capsys):
    assert report.main(_argv(tiny_data, tmp_path, "out", "--seeds", "1")) == 0
    assert len(_trained(capsys.readouterr().out)) == 3
    assert report.main(_argv(tiny_data, tmp_path, "out", "--seeds", "2")) == 0
    out = capsys.readouterr().out
    trained = _trained(out)
    assert len(trained) == 3 and all("seed 2," in line for line in trained)
    assert "not reused" not in out  # the seed-1 runs have these very settings (read back from JSON)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["arms"]["baseline"]["seeds"] == [1, 2] and metrics["comparison"][1]["test"] == "paired t"

    # Saved runs of other settings with no report of their own (a first report that died before it
    # rendered): kept, named, not reused. Beside a rendered report, other settings are refused instead.
    shutil.copytree(tmp_path / "out" / "runs", tmp_path / "unrendered" / "runs")
    argv = _argv(tiny_data, tmp_path, "unrendered", "--seeds", "1")
    argv[argv.index("--epochs") + 1] = "2"
    assert report.main(argv) == 0
    out = capsys.readouterr().out
    assert len(_trained(out)) == 3
    notes = [line for line in out.splitlines() if "not reused" in line]
    assert len(notes) == 1 and "epochs (3)" in notes[0]  # the three seed-1 runs trained for 1 epoch
    assert len(list((tmp_path / "unrendered" / "runs").glob("*.json"))) == 9  # nothing deleted


def _crafted_retrain(accuracies):
    """retrain() without training: test accuracy from `accuracies[(optimizer, seed)]` (else 0.5), validation = test."""
    return crafted(accuracies)


def test_the_report_renders_the_numbers_of_a_crafted_set_of_runs(tiny_data, tmp_path, monkeypatch):
    """Test accuracies chosen so that every printed statistic can be worked out by hand (20 test images)."""
    acc = {("adam", 1): 0.50, ("adam", 2): 0.55, ("adam", 3): 0.60,
           ("sgd", 1): 0.30, ("sgd", 2): 0.40, ("sgd", 3): 0.35,
           ("rmsprop", 1): 0.55, ("rmsprop", 2): 0.60, ("rmsprop", 3): 0.70}
    monkeypatch.setattr(retrain, "retrain", _crafted_retrain(acc))
    # Every arm with every seed (no racing: SGD would be dropped after 2), so each number is over 3 seeds.
    assert report.main(_argv(tiny_data, tmp_path, "out", "--seeds", "3", "--min-seeds", "3")) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    rows = {r["name"]: r for r in metrics["comparison"]}
    t2 = 0.95 * (2 / (1 - 0.95**2)) ** 0.5  # t(0.975, 2 df)
    p_rms = 1 - 4.0 / (16 + 2) ** 0.5  # differences 0.05, 0.05, 0.10: t = 4 with 2 df
    t_sgd = 0.2 / (0.05 / 3**0.5)  # differences -0.20, -0.15, -0.25
    p_sgd = 1 - t_sgd / (t_sgd**2 + 2) ** 0.5
    assert rows["rmsprop"]["diff_vs_baseline"] == pytest.approx(0.2 / 3)
    assert rows["rmsprop"]["diff_ci_high"] - 0.2 / 3 == pytest.approx(t2 * (0.05 / 3**0.5) / 3**0.5, rel=1e-6)
    assert rows["rmsprop"]["p_value"] == pytest.approx(p_rms, rel=1e-6)
    assert rows["sgd"]["p_value"] == pytest.approx(p_sgd, rel=1e-6)
    assert rows["sgd"]["p_holm"] == pytest.approx(2 * p_sgd, rel=1e-6)  # the smaller p, times 2
    assert rows["rmsprop"]["p_holm"] == pytest.approx(p_rms, rel=1e-6)
    assert (rows["sgd"]["verdict"], rows["rmsprop"]["verdict"]) == ("worse", "noise")
    assert rows["rmsprop"]["better"] == 3 and rows["sgd"]["better"] == 0
    assert rows["baseline"]["ci_high"] - 0.55 == pytest.approx(t2 * 0.05 / 3**0.5, rel=1e-6)
    recommendation = metrics["recommendation"]
    # rmsprop has the best validation accuracy; its gain, p = 0.057, is within the noise: keep the baseline.
    assert recommendation["name"] == "baseline" and recommendation["picked_by"] == "validation"
    assert recommendation["beats_baseline"] is False and recommendation["challenger"] == "rmsprop"
    assert recommendation["test_accuracy"] == pytest.approx(0.55, abs=1e-6)
    assert recommendation["vs_baseline"]["p_value"] == pytest.approx(p_rms, rel=1e-6)

    text = (tmp_path / "out" / "report.md").read_text()
    assert "**Keep the baseline**" in text and "Its challenger, rmsprop (rmsprop, lr 0.001" in text
    assert "On the race's own seeds 1-3, +6.7 points (95% interval -0.5 to +13.8), p = 0.057 (paired t), better in " \
        "3 of 3 seeds: within the noise" in text and "exploratory, not confirmed" in text
    assert "+6.7 pts (-0.5 to +13.8)" in text and "| **baseline** " in text
    assert f"| {p_rms:.2g} (paired t; uncorrected {p_rms:.2g})" in text
    assert f"{2 * p_sgd:.2g} (paired t; uncorrected {p_sgd:.2g})" in text
    assert "Worse beyond the noise: sgd (-20.0 points)." in text
    assert "On the race's seeds, no configuration is better than the baseline beyond the noise (Holm's correction " \
        "over the 2 comparisons)." in text
    assert "Holm's method" in text
    assert stats.verdict(stats.Comparison("paired t", 0.2 / 3, 0, 0, p_rms, 3, 3, p_rms)) == "noise"


def test_a_configuration_shared_by_two_arms_is_trained_once(tiny_data, tmp_path, monkeypatch):
    """A grid whose only point is the notebook's configuration: its best is the baseline, trained once per seed."""
    from study import search

    calls = []
    monkeypatch.setattr(retrain, "retrain", crafted(calls=calls))
    runs = tmp_path / "searches"
    assert search.main(["--data-dir", str(tiny_data), "--epochs", "1", "--directory", str(runs),
                        "--optimizers", "adam", "--learning-rates", "0.001"]) == 0
    assert report.main(_argv(tiny_data, tmp_path, "out", "--seeds", "2")) == 0
    # Race seeds 2 and 3 (the search trained with seed 1): 6 runs, not 8.
    assert sorted(calls) == sorted((o, s) for o in ("adam", "sgd", "rmsprop") for s in (2, 3))
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["arms"]["grid best"]["hyperparameters"] == metrics["arms"]["baseline"]["hyperparameters"]
    row = next(r for r in metrics["comparison"] if r["name"] == "grid best")
    assert row["verdict"] == "same configuration"  # no comparison: null, not p = 1
    assert [row[k] for k in ("test", "diff_vs_baseline", "diff_ci_low", "p_value", "p_holm", "better", "pairs")] \
        == [None] * 7
    table = pd.read_csv(tmp_path / "out" / "tables" / "final_comparison.csv").set_index("configuration")
    assert table.loc["grid best", ["test", "p_value", "p_holm", "diff_vs_baseline"]].isna().all()
    assert table.loc["grid best", "verdict"] == "same configuration"


def test_rendering_alone_decodes_no_training_image(tiny_data, tmp_path, monkeypatch):
    """Nothing left to train: the report plans and renders from labels, samples and the encoded test images."""
    from study import data as data_lib

    monkeypatch.setattr(retrain, "retrain", _crafted_retrain({(o, 1): 0.5 for o in ("adam", "sgd", "rmsprop")}))
    loads, load = [], data_lib.load_dataset

    def recording(cfg, **kwargs):
        loads.append(kwargs.get("keep_train", True))
        return load(cfg, **kwargs)

    monkeypatch.setattr(data_lib, "load_dataset", recording)
    assert report.main(_argv(tiny_data, tmp_path, "out", "--seeds", "1")) == 0
    assert loads == [False, True]  # planned on labels, then every image for training
    first = json.loads((tmp_path / "out" / "metrics.json").read_text())
    loads.clear()
    assert report.main(_argv(tiny_data, tmp_path, "out", "--seeds", "1")) == 0
    assert loads == [False]
    again = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert [again[k] for k in ("comparison", "recommendation", "arms")] == [
        first[k] for k in ("comparison", "recommendation", "arms")]


def test_a_rerun_that_only_renders_copies_the_model_files_and_imports_no_tensorflow(tiny_data, tmp_path):
    argv = _argv(tiny_data, tmp_path, "out", "--seeds", "1")
    assert report.main(argv) == 0
    models = tmp_path / "out" / "models"
    before = {p.name: p.read_bytes() for p in models.glob("*.keras")}
    assert "baseline-seed1.keras" in before
    script = ("import json, sys\nfrom study import report\n"
              f"code = report.main({argv!r})\n"
              "print(json.dumps([code, sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))]))")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}

    def render_only() -> list:
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    assert render_only() == [0, []]
    assert {p.name: p.read_bytes() for p in models.glob("*.keras")} == before
    # Weights written again (a run retrained elsewhere, copied in): its model file is made anew from them.
    for weights in (tmp_path / "out" / "runs").glob("*.weights.h5"):
        os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    code, imported = render_only()
    assert code == 0 and "keras" in imported


def test_arms_that_did_not_start_from_the_baselines_initial_weights_are_named(tiny_data, tmp_path, monkeypatch):
    same_start = _crafted_retrain({})

    def other_start(data, hyperparameters, seed, cfg, **kwargs):
        run = same_start(data, hyperparameters, seed, cfg, **kwargs)
        if hyperparameters["optimizer"] == "sgd" and seed == 2:
            run.initial_weights = "other"
        return run

    monkeypatch.setattr(retrain, "retrain", other_start)
    assert report.main(_argv(tiny_data, tmp_path, "out", "--seeds", "2")) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert "**Initial weights differ** from the baseline's of the same seed for sgd: their layers" in text
    assert "(initial weights DIFFER)" in text

    monkeypatch.setattr(retrain, "retrain", same_start)
    assert report.main(_argv(tiny_data, tmp_path, "same", "--seeds", "2")) == 0
    text = (tmp_path / "same" / "report.md").read_text()
    assert "Initial weights differ" not in text and "from identical initial weights" in text


def test_the_same_seed_gives_the_same_initial_weights_whatever_the_dropout_rates():
    """Keras draws a seed only for a Dropout layer with a rate above 0, which shifted every later layer's initial
    weights: each layer's weights are now seeded from the run's seed and the layer's name (study.seeding)."""
    hp = {"optimizer": "adam", "learning_rate": 1e-3, "dropout_1": 0.2, "dropout_2": 0.3, "dropout_3": 0.4}
    rates = ((0.2, 0.3, 0.4), (0.2, 0.3, 0.0), (0.0, 0.0, 0.0), (0.5, 0.1, 0.2))
    weights = [retrain.initial_model((32, 32, 3), 3, dict(hp, dropout_1=a, dropout_2=b, dropout_3=c), 1).get_weights()
               for a, b, c in rates]
    for other in weights[1:]:
        assert len(other) == len(weights[0]) and all(np.array_equal(a, b) for a, b in zip(weights[0], other))
    another_seed = retrain.initial_model((32, 32, 3), 3, hp, 2).get_weights()
    assert not any(np.array_equal(a, b) for a, b in zip(weights[0], another_seed) if a.any())


def test_the_notebook_table_starts_on_a_line_of_its_own():
    from study import render

    row = {"optimizer": "adam", "final_val_accuracy": 0.7, "test_accuracy": 0.7, "test_accuracy_std": float("nan")}
    lines = render.notebook_text([row]).splitlines()
    assert lines[0] == "**Against the notebook.**" and lines[1] == "" and lines[2].startswith("|")
