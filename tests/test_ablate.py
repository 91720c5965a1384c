"""`python -m study.ablate`: one change at a time both ways, the greedy path, their paired intervals, and bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import ablation_accuracy, crafted, refused

from study import ablate, report, retrain

ROOT = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).with_name("crash_runner.py")
TARGET = "batch_size=32,augmentation=flip,label_smoothing=0.1,dropout_1=0.1,dropout_2=0.4,dropout_3=0.2"
GROUP = "dropout_1,dropout_2,dropout_3"


@pytest.fixture
def a_report(tiny_data, tmp_path, monkeypatch):
    """A report (no search: race seeds 1-2, confirmation seeds 3-5) whose crafted runs the ablation reads."""
    monkeypatch.setattr(retrain, "retrain", crafted(ablation_accuracy))
    (tmp_path / "searches").mkdir()
    assert report.main(["--data-dir", str(tiny_data), "--directory", str(tmp_path / "searches"), "--output",
                        str(tmp_path / "report"), "--epochs", "1", "--seeds", "2", "--confirm-seeds", "3",
                        "--batch-size", "16"]) == 0
    return tmp_path / "report"


def test_one_at_a_time_both_ways_and_the_path_find_what_carries_the_gain(a_report, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(retrain, "retrain", crafted(ablation_accuracy, calls))
    capsys.readouterr()
    assert ablate.main(["--report", str(a_report), "--target", TARGET, "--group", GROUP, "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    folder = a_report / "ablation"
    numbers = json.loads((folder / "ablation.json").read_text())
    assert numbers["seeds"] == [3, 4, 5]  # the report's confirmation seeds: no search and no race used them
    assert list(numbers["components"]) == [GROUP.replace(",", "+"), "batch_size", "augmentation", "label_smoothing"]
    assert numbers["source"]["batch_size"] == 16 and numbers["target"]["batch_size"] == 32  # complete, every value
    added = {e["component"]: e for e in numbers["one_at_a_time"]["added"]}
    removed = {e["component"]: e for e in numbers["one_at_a_time"]["removed"]}
    assert added["augmentation"]["diff_vs_source"]["mean"] == pytest.approx(0.10)
    assert removed["augmentation"]["diff_vs_target"]["mean"] == pytest.approx(-0.10)
    assert added["batch_size"]["diff_vs_source"]["mean"] == pytest.approx(0.05)
    assert added["label_smoothing"]["diff_vs_source"]["mean"] == pytest.approx(0.0, abs=1e-9)
    for e in added.values():  # additive effects: nothing interacts
        assert e["interaction"]["mean"] == pytest.approx(0.0, abs=1e-9)
        assert set(e["diff_vs_source"]) >= {"mean", "ci_low", "ci_high", "p_value", "p_holm"}
    assert numbers["total"]["mean"] == pytest.approx(0.15) and numbers["total"]["beyond_noise"] is False  # sign test
    path = numbers["path"]
    assert [e["component"] for e in path][:2] == ["augmentation", "batch_size"]  # the largest help on validation first
    assert path[-1]["hyperparameters"] == numbers["target"] and len(path) == 4
    assert path[0]["diff_vs_previous"]["mean"] == pytest.approx(0.10)
    assert path[1]["diff_vs_source"]["mean"] == pytest.approx(0.15)
    assert all(e["share_of_total"] is None for e in path)  # the total is not beyond the noise
    # Configurations: source, target, 4 added, 4 removed, and the path's second step's 3 new candidates (its third
    # step's are the target less one component, trained already). Raced, but the crafted runs differ alike at every
    # seed: no spread to drop one on, so each gets every seed.
    compute = numbers["compute"]
    assert compute["configurations"] == 10 + 3 and compute["reused"] == 3  # the baseline's confirmation runs
    assert len(calls) == compute["retrainings"] - compute["reused"] == 10 * 3 - 3 + 3 * 3
    assert (compute["path_new_retrainings"], compute["path_new_retrainings_without_racing"]) == (9, 9)
    rows = (folder / "tables" / "runs.csv").read_text().splitlines()[1:]
    assert len(rows) == compute["retrainings"]  # every retraining listed once, the step's raced-out candidates too
    assert sum(r.startswith("raced at step 2: ") for r in rows) == 2 * 3
    text = (folder / "ablation.md").read_text()
    assert "## One change at a time" in text and "## The path" in text and "![the ablation path" in text
    assert (folder / "figures" / "path.png").exists() and (folder / "figures" / "one_at_a_time.png").exists()
    assert "ablation: " in out and "path: augmentation (+10.0) → batch_size (+5.0)" in out
    # The time left counts the path's candidates ahead: 27 one-at-a-time runs to train, then at most 9 of the path.
    assert "at most 36 retrainings to train" in out and "(at most 35 retrainings)" in out
    # A rerun trains nothing and writes the same numbers.
    calls.clear()
    assert ablate.main(["--report", str(a_report), "--target", TARGET, "--group", GROUP, "--seeds", "3"]) == 0
    assert calls == [] and json.loads((folder / "ablation.json").read_text()) == numbers


def test_bad_input_is_one_line_and_exit_2_before_any_data_is_read(a_report, tmp_path, capsys):
    argv = ["--report", str(a_report)]
    refused(capsys, ablate.main, argv, "keeps the baseline", "--target")  # the crafted report recommends none
    refused(capsys, ablate.main, ["--report", str(tmp_path / "nowhere")], "does not exist")
    refused(capsys, ablate.main, [*argv, "--target", "learning_rate=0.001"], "the same configuration")
    refused(capsys, ablate.main, [*argv, "--target", TARGET, "--group", "dropout_1,dropout_9"], "no hyperparameter "
            "named dropout_9")
    refused(capsys, ablate.main, [*argv, "--target", TARGET, "--group", "dropout_1,dropout_1"], "names dropout_1 twice")
    refused(capsys, ablate.main, [*argv, "--target", TARGET, "--group", "dropout_1", "--group", "dropout_1,dropout_2"],
            "names dropout_1 twice")
    refused(capsys, ablate.main, [*argv, "--target", "batch_sise=32"], "no hyperparameter named batch_sise")
    refused(capsys, ablate.main, [*argv, "--target", TARGET, "--seeds", "1"], "--seeds must be >= 2")
    assert not (a_report / "ablation").exists()


def test_a_sigkill_and_a_rerun_give_the_same_numbers(a_report, tmp_path, capsys):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}

    def ablation(out: str, point: str) -> subprocess.CompletedProcess:
        argv = ["ablate", "--report", str(a_report), "--target", TARGET, "--group", GROUP, "--seeds", "3", "--output",
                str(tmp_path / out)]
        return subprocess.run([sys.executable, str(RUNNER), "--crafted", "ablation", point, "--", *argv],
                              capture_output=True, text=True, env=env, timeout=600)

    whole = ablation("whole", "none")
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = ablation("crashed", "run-saved:20")  # in the path, after the one-at-a-time view
    assert killed.returncode == -9, killed.stderr[-3000:]
    # Its settings are saved before its first run: another ablation into the same folder is refused, unrendered.
    assert json.loads((tmp_path / "crashed" / "config.json").read_text())["seeds"] == 3
    assert not (tmp_path / "crashed" / "ablation.json").exists()
    refused(capsys, ablate.main, ["--report", str(a_report), "--target", TARGET, "--group", GROUP, "--seeds", "4",
                                  "--output", str(tmp_path / "crashed")], "another seeds", "--overwrite")
    rerun = ablation("crashed", "none")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    expected, got = (json.loads((tmp_path / out / "ablation.json").read_text()) for out in ("whole", "crashed"))
    assert {k: v for k, v in got.items() if k != "compute"} == {k: v for k, v in expected.items() if k != "compute"}


def test_study_ablate_takes_the_flags_as_keywords_and_gives_the_commands_numbers(a_report, tmp_path, monkeypatch):
    import study

    monkeypatch.setattr(retrain, "retrain", crafted(ablation_accuracy))
    assert ablate.main(["--report", str(a_report), "--target", TARGET, "--group", GROUP, "--seeds", "3",
                        "--output", str(tmp_path / "cli")]) == 0
    s = study.Study(output=a_report)
    target = dict(item.split("=") for item in TARGET.split(","))
    result = s.ablate(target=target, group=[tuple(GROUP.split(","))], seeds=3, output=tmp_path / "py")
    cli = json.loads((tmp_path / "cli" / "ablation.json").read_text())
    assert {k: v for k, v in result.numbers.items() if k != "compute"} == \
        {k: v for k, v in cli.items() if k != "compute"}
    assert result.path["component"].tolist()[:1] == ["augmentation"] and "path" in result.figures
    assert "<table" in result._repr_html_()
    with pytest.raises(study.StudyError, match="unknown keyword 'targets'"):
        s.ablate(targets=target)
