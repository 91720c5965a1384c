"""`python -m study.report`: end to end after two tiny searches, the numbers behind it, and bad input."""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_CIFAR, make_dataset
from fakes import refused, crafted
from PIL import Image
from sklearn.metrics import classification_report, confusion_matrix

from study import arms as arms_lib
from study import plots, render, report, retrain, search, stats, wording
from study.records import Run
from study.config import BASELINE, DataConfig, SearchConfig, StudyError


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A tiny grid and bayesian search (1 epoch, 2 trials each) and the report on them."""
    root = tmp_path_factory.mktemp("report")
    data = make_dataset(root / "data", classes=tuple(f"class{i}" for i in range(10)), n_train=10, n_test=2)
    runs = root / "tuner_results"
    for tuner in ("grid", "bayesian"):
        argv = ["--tuner", tuner, "--data-dir", str(data), "--epochs", "1", "--max-trials", "2", "--directory", str(runs)]
        assert search.main(argv) == 0
    argv = ["--directory", str(runs), "--output", str(root / "reports"), "--epochs", "1", "--seeds", "1",
            "--confirm-seeds", "1"]
    assert report.main(argv) == 0
    return root


def test_every_figure_and_table_is_written_and_referenced(finished):
    out = finished / "reports"
    text = (out / "report.md").read_text()
    figures = sorted((out / "figures").glob("*.png"))
    expected = {"samples", "label_counts", "baseline_curves", "confusion_matrix", "predictions", "optimizer_validation",
                "search_progress", "lr_grid", "lr_bayesian", "dropout_grid", "dropout_bayesian", "final_comparison",
                "learning_curves_grid", "learning_curves_bayesian", "parallel_grid", "parallel_bayesian"}
    assert {f.stem for f in figures} == expected
    for figure in figures:
        assert figure.read_bytes().startswith(b"\x89PNG")
        with Image.open(figure) as image:
            image.verify()
        assert f"](figures/{figure.name})" in text
    tables = sorted((out / "tables").glob("*.csv"))
    assert {"optimizers", "classification_report", "final_comparison", "trials_grid", "trials_bayesian"} <= {t.stem for t in tables}
    for table in tables:
        assert f"](tables/{table.name})" in text
    assert "No search was found" not in text and "## Final comparison" in text and "**Summary.**" in text
    assert text.count("Hyperparameter importance needs at least 8 completed trials") == 2  # 2 trials each
    assert not list(finished.glob(".reports.*"))  # no temporary folder left behind


def test_metrics_hold_the_test_accuracies(finished):
    out = finished / "reports"
    metrics = json.loads((out / "metrics.json").read_text())
    names = [row["name"] for row in metrics["comparison"]]
    assert names == ["baseline", "sgd", "rmsprop", "bayesian best", "grid best"]  # every arm against the baseline
    for row in metrics["comparison"]:
        assert 0 <= row["ci_low"] <= row["test_accuracy"] <= row["ci_high"] <= 1
        assert row["interval"] == "Wilson"
    assert 0 <= metrics["baseline"]["test_accuracy"] <= 1
    runs = pd.read_csv(out / "tables" / "runs.csv")
    assert set(runs.configuration) == {"baseline", "sgd", "rmsprop", "grid best", "bayesian best"}
    saved = json.loads((out / "config.json").read_text())
    assert saved["epochs"] == 1 and saved["seeds"] == 1 and saved["data_from"] == "search bayesian"


def test_confusion_matrix_and_classification_report_agree_with_sklearn(finished):
    out = finished / "reports"
    metrics = json.loads((out / "metrics.json").read_text())
    predictions = pd.read_csv(out / "predictions.csv")
    assert len(predictions) == metrics["test_size"] == 20
    matrix = np.array(metrics["baseline"]["confusion_matrix"])
    assert matrix.sum() == metrics["test_size"]
    assert (matrix == confusion_matrix(predictions.true, predictions.predicted, labels=range(10))).all()
    expected = classification_report(predictions.true, predictions.predicted, labels=range(10),
                                     target_names=metrics["class_names"], output_dict=True, zero_division=0)
    table = pd.read_csv(out / "tables" / "classification_report.csv").set_index("class")
    for name in metrics["class_names"]:
        for column in ("precision", "recall", "f1-score", "support"):
            assert table.loc[name, column] == pytest.approx(expected[name][column])
    assert np.mean(predictions.true == predictions.predicted) == pytest.approx(metrics["baseline"]["test_accuracy"])


def test_best_configuration_is_the_highest_validation_accuracy(finished):
    metrics = json.loads((finished / "reports" / "metrics.json").read_text())
    for name in ("grid", "bayesian"):
        trials = pd.read_csv(finished / "tuner_results" / name / "trials.csv", dtype={"trial_id": str})
        top = trials[trials.status == "COMPLETED"].sort_values("trial_id").val_accuracy.idxmax()
        picked = metrics["arms"][f"{name} best"]["hyperparameters"]
        assert {k: picked[k] for k in BASELINE.hyperparameters()} == {k: trials.loc[top, k] for k in BASELINE.hyperparameters()}
        assert next(s for s in metrics["searches"] if s["name"] == name)["best_trial_id"] == trials.loc[top, "trial_id"]


def test_optimizers_start_from_identical_weights_with_the_same_data_order(finished):
    runs = pd.read_csv(finished / "reports" / "tables" / "runs.csv")
    race = runs[runs["seeds for"] == "race"].set_index("configuration")
    assert race.loc[["baseline", "sgd", "rmsprop"], "initial_weights_sha1"].nunique() == 1
    models = [retrain.initial_model((16, 16, 3), 3, {**BASELINE.hyperparameters(), "optimizer": o}, seed=5)
              for o in ("adam", "sgd", "rmsprop")]
    for model in models[1:]:
        for a, b in zip(models[0].get_weights(), model.get_weights()):
            np.testing.assert_array_equal(a, b)
    other = retrain.initial_model((16, 16, 3), 3, BASELINE.hyperparameters(), seed=6)
    assert not np.array_equal(other.get_weights()[0], models[0].get_weights()[0])


_fake_retrain = crafted(default=0.65)  # no training: every run gets 65% of the test images right


def test_no_search_still_reports_data_and_baseline_and_replaces_the_old_report(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(retrain, "retrain", _fake_retrain)
    (tmp_path / "none").mkdir()  # a search folder with no search in it
    out = tmp_path / "reports"
    out.mkdir()
    (out / "README.md").write_text("kept")
    (out / "report.md").write_text("stale")
    (out / "stale.png").write_text("stale")
    argv = ["--data-dir", str(tiny_data), "--directory", str(tmp_path / "none"), "--output", str(out), "--seeds", "2"]
    assert report.main(argv) == 0
    text = (out / "report.md").read_text()
    assert "No search was found" in text and "## Data" in text and "## Baseline" in text
    assert text.split("**Summary.** ")[1].startswith("No search was found")  # its first sentence
    assert "![confusion matrix](figures/confusion_matrix.png)" in text
    assert not (out / "stale.png").exists() and (out / "README.md").read_text() == "kept"
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["name"] for r in metrics["comparison"]] == ["baseline", "sgd", "rmsprop"]
    assert metrics["comparison"][0]["interval"] == "t" and metrics["comparison"][0]["seeds"] == [1, 2]
    assert "from no search in" in capsys.readouterr().out


def test_a_crash_while_rendering_keeps_the_previous_report(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(retrain, "retrain", _fake_retrain)
    (tmp_path / "none").mkdir()
    out = tmp_path / "reports"
    out.mkdir()
    (out / "report.md").write_text("previous")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "confusion_heatmap", broken)
    with pytest.raises(RuntimeError):
        report.main(["--data-dir", str(tiny_data), "--directory", str(tmp_path / "none"), "--output", str(out)])
    assert (out / "report.md").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["none", "reports", "tiny"]
    # The retrainings that ended before the crash are kept for the rerun: the race's 15, the confirmation's 10.
    assert sorted(p.name for p in out.iterdir()) == ["report.md", "runs"] and len(list((out / "runs").iterdir())) == 25


def _project(directory, name, **config):
    folder = directory / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**SearchConfig(**config).to_dict(), "class_names": ["a", "b"]}))
    return folder


@pytest.mark.parametrize(
    "setup, extra, message",
    [
        (lambda d: (d / "grid").mkdir(parents=True), [], "is not a study search"),
        (lambda d: _project(d, "out").joinpath("config.json").write_text('{"output": "out", "seeds": 5}'), [],
         "its config.json is not a search's"),  # a report folder inside --directory
        (lambda d: _project(d, "grid").joinpath("config.json").write_text("{not json"), [], "cannot read the search"),
        (lambda d: d.parent.mkdir(exist_ok=True) or d.write_text("a file"), [], "is not a directory"),
        (lambda d: None, [], "does not exist"),  # a typo in --directory must not cost an hour of training
        (lambda d: d.mkdir(), ["--epochs", "0"], "--epochs must be > 0"),
        (lambda d: d.mkdir(), ["--seeds", "-1"], "--seeds must be > 0"),
        (lambda d: d.mkdir(), ["--output", "OUT_UNDER_FILE"], "not a writable directory"),
        (lambda d: d.mkdir(), ["--output", "FOREIGN"], "holds files that are not a report"),
        (lambda d: d.mkdir(), ["--data-dir", "MISSING"], "no such file or directory"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, setup, extra, message):
    runs = tmp_path / "runs"
    setup(runs)
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "thesis.tex").write_text("x")
    paths = {"OUT_UNDER_FILE": str(tmp_path / "a_file" / "reports"), "FOREIGN": str(tmp_path / "foreign"),
             "MISSING": str(tmp_path / "missing")}
    extra = [paths.get(e, e) for e in extra]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    err = refused(capsys, report.main, ["--directory", str(runs), "--output", str(tmp_path / "reports"), *extra], message)
    assert err.startswith("python -m study.report: error: ")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_data_comes_from_the_first_search_unless_flags_are_given(tmp_path):
    runs = tmp_path / "runs"
    _project(runs, "a", seed=7, data=DataConfig(data_dir="x.tar.gz", subset=500, split_seed=3))
    _project(runs, "b", data=DataConfig(data_dir="y.tar.gz"))
    searches = report.find_searches(runs)
    cfg, warnings = report.resolve_config(report.build_parser().parse_args([]), searches)
    assert cfg.data == DataConfig(data_dir="x.tar.gz", subset=500, split_seed=3) and cfg.data_from == "search a"
    assert cfg.seed == 8 and len(warnings) == 1 and "different data" in warnings[0]  # past the largest search seed
    cfg, _ = report.resolve_config(report.build_parser().parse_args(["--data-dir", "z", "--seed", "9"]), searches)
    assert cfg.data == DataConfig(data_dir="z", subset=500, split_seed=3) and cfg.seed == 9
    assert cfg.data_from == "search a, changed by --data-dir"
    cfg, _ = report.resolve_config(report.build_parser().parse_args(["--full-data"]), searches)
    assert cfg.data == DataConfig(data_dir="x.tar.gz", split_seed=3) and cfg.data_from == "search a, changed by --full-data"
    cfg, _ = report.resolve_config(report.build_parser().parse_args(["--subset", "50"]), [])
    assert cfg.data == DataConfig(subset=50) and cfg.data_from == "flags"
    with pytest.raises(StudyError, match="contradict"):
        report.resolve_config(report.build_parser().parse_args(["--full-data", "--subset", "50"]), searches)


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_CIFAR.exists(), reason=f"{SHARED_CIFAR} is absent")
def test_real_data_report(tmp_path):
    runs = tmp_path / "runs"
    argv = ["--data-dir", str(SHARED_CIFAR), "--subset", "200", "--epochs", "1", "--directory", str(runs)]
    assert search.main([*argv, "--tuner", "grid", "--max-trials", "2"]) == 0
    assert report.main(["--directory", str(runs), "--output", str(tmp_path / "out"), "--epochs", "1", "--seeds", "1"]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert re.search(r"\| airplane +\|", text)  # class names from the folders


def test_summary_keeps_the_baseline_unless_the_confirmation_beats_it_beyond_the_noise():
    cfg = report.ReportConfig(epochs=3, seeds=3, seed=2, confirm_seeds=3)
    base, rmsprop = BASELINE.hyperparameters(), {**BASELINE.hyperparameters(), "optimizer": "rmsprop"}
    hps = {"baseline": base, "grid best": rmsprop}
    y_test = np.arange(20) % 10
    runs = {"baseline": [_crafted(s, a, 0.60, base) for s, a in ((2, .5), (3, .55), (4, .6))],
            "grid best": [_crafted(s, a, 0.65, rmsprop) for s, a in ((2, .9), (3, .9), (4, .9))]}  # lucky in the race
    confirming = [_crafted(s, a, 0.6, base) for s, a in ((5, .5), (6, .55), (7, .6))]
    # Differences 0.05, 0.05, 0.10 on the fresh seeds: p = 0.057, within the noise: keep the baseline.
    level = [_crafted(s, a, 0.6, rmsprop) for s, a in ((5, .55), (6, .6), (7, .7))]
    text = wording.summary_text(stats.analyse(runs, y_test, confirmation=(confirming, level)), hps, cfg, True)
    assert text.startswith("**Keep the baseline** (adam, lr 0.001, dropout 0.2/0.3/0.4): test accuracy 55.0% ± 5.0 "
                           "(sd over 3 seeds).")
    assert "Its challenger, grid best (rmsprop, lr 0.001, dropout 0.2/0.3/0.4), does not beat it. On 3 fresh seeds " \
        "(seeds 5-7), which no search and no race used, it reaches 61.7% test accuracy against the baseline's 55.0%: " \
        "+6.7 points (95% interval" in text
    assert "p = 0.057 (paired t), better in 3 of 3 seeds: within the noise" in text
    assert "The race picked it on validation, 65.0% against the baseline's 60.0% over seeds 2-4." in text
    assert "3 epochs" in text and "Recommended" not in text and "exploratory" not in text
    # Differences 0.05, 0.10, 0.10: p = 0.038, beyond the noise: recommended.
    better = [_crafted(s, a, 0.6, rmsprop) for s, a in ((5, .55), (6, .65), (7, .7))]
    text = wording.summary_text(stats.analyse(runs, y_test, confirmation=(confirming, better)), hps, cfg, False)
    assert text.startswith("No search was found") and "**Recommended: grid best** (rmsprop, lr 0.001" in text
    assert "p = 0.038 (paired t), better in 3 of 3 seeds: better than the baseline beyond the noise." in text
    # Without a confirmation (--confirm-seeds 0) the race's own runs decide, and the claim says it is exploratory.
    explored = dataclasses.replace(cfg, confirm_seeds=0)
    text = wording.summary_text(stats.analyse(runs, y_test), hps, explored, True)
    assert "**Recommended, exploratory: grid best**" in text and "exploratory, not confirmed" in text
    assert "On the race's own seeds 2-4, " in text


def test_one_seed_says_the_interval_covers_the_test_images_only():
    cfg = report.ReportConfig(epochs=15, seeds=1, seed=2, confirm_seeds=1)
    base, rmsprop = BASELINE.hyperparameters(), {**BASELINE.hyperparameters(), "optimizer": "rmsprop"}
    runs = {"baseline": [_crafted(2, .3, 0.60, base)], "grid best": [_crafted(2, .9, .65, rmsprop)]}
    confirmation = ([_crafted(3, .3, 0.6, base)], [_crafted(3, .9, 0.6, rmsprop)])
    text = wording.summary_text(stats.analyse(runs, np.arange(20) % 10, confirmation=confirmation),
                                {"baseline": base, "grid best": rmsprop}, cfg, True)
    assert "**Recommended: grid best** (rmsprop" in text and "p = 0.00049 (McNemar)" in text  # 2 / 2**12
    assert "beyond the sampling of the test images (the interval covers the sampling of the test images only" in text
    assert "With one seed, the interval covers the sampling of the test images only, not seed-to-seed" in text


def _crafted(seed, acc, val, hp, n=20):
    """A run with test accuracy `acc` on the 20 test images of `tiny_data` and final validation accuracy `val`."""
    y_test = np.arange(n) % 10
    y_pred = np.where(np.arange(n) < round(acc * n), y_test, (y_test + 1) % 10)
    history = {"loss": [1.0], "accuracy": [0.5], "val_loss": [1.0], "val_accuracy": [val]}
    return Run(dict(hp), seed, history, 1.0, acc, 1.0, y_pred, f"weights-{seed}")


def test_trial_ids_keep_their_leading_zeros(finished):
    text = (finished / "reports" / "report.md").read_text()
    for name in ("grid", "bayesian"):
        for trial_id in pd.read_csv(finished / "tuner_results" / name / "trials.csv", dtype={"trial_id": str}).trial_id:
            assert re.search(rf"^\| {trial_id} +\| COMPLETED", text, re.M)


def test_failed_trials_are_shown_and_never_picked(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(retrain, "retrain", _fake_retrain)
    runs = tmp_path / "tuner_results"
    argv = ["--data-dir", str(tiny_data), "--epochs", "1", "--directory", str(runs),
            "--optimizers", "sgd", "--learning-rates", "1e12,0.01"]
    assert search.main(argv) == 0
    trials = pd.read_csv(runs / "grid" / "trials.csv")
    assert trials.status.tolist() == ["FAILED", "COMPLETED"]
    assert report.main(["--directory", str(runs), "--output", str(tmp_path / "out"), "--epochs", "1"]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert "FAILED" in text and "nan" in text.lower()  # the failed row and its reason
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    # The grid's best is the SGD arm's configuration: one arm, named after both.
    assert metrics["arms"]["sgd = grid best"]["hyperparameters"]["learning_rate"] == 0.01 and "sgd" not in metrics["arms"]


def test_two_searches_with_the_same_best_configuration_are_one_arm():
    from types import SimpleNamespace

    def searched(name, **hp):
        trials = pd.DataFrame([{"trial_id": "0", "status": "COMPLETED", "val_accuracy": 0.7, **hp}])
        return SimpleNamespace(name=name, trials=trials, best=trials.iloc[0])

    base = BASELINE.hyperparameters()
    rms = {**base, "optimizer": "rmsprop", "learning_rate": 0.0005}
    arms = arms_lib.plan([searched("grid", **base), searched("bayesian", **rms), searched("hyperband", **rms)], base)
    assert list(arms) == ["baseline", "sgd", "rmsprop", "grid best", "bayesian best = hyperband best"]
    assert arms["bayesian best = hyperband best"] == rms and arms["grid best"] == base  # shown as the baseline's


def test_importance_is_shown_only_when_its_forest_explains_something_and_never_ranks_hyperbands_epochs(
        tmp_path, monkeypatch):
    from study import insights, render_searches, results

    table = pd.DataFrame({"mean": [0.3, 0.1, 0.05], "std": [0.01, 0.01, 0.01]},
                         index=pd.Index(["dropout_1", results.BUDGET, "optimizer"], name="hyperparameter"))
    search = type("S", (), {"trials": pd.DataFrame(), "name": "hyperband"})()
    out = render.Writer(tmp_path)
    for r2, shown in ((-0.08, False), (0.0, False), (0.4, True)):
        importance = insights.Importance(table, 30, 8, (), r2)
        monkeypatch.setattr(insights, "hyperparameter_importance", lambda trials, importance=importance: importance)
        text = render_searches.importance_text(search, "hyperband", out)
        assert ("explains none of their validation accuracy" in text) is not shown
        assert ("![hyperband hyperparameter importance]" in text) is shown
    ranked = pd.read_csv(tmp_path / "tables" / "importance_hyperband.csv")
    assert ranked["hyperparameter"].tolist() == ["dropout_1", "optimizer"]  # tuner/epochs is no hyperparameter
    assert "Hyperband's rounds" in text
