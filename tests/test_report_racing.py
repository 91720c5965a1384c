"""`python -m study.report` races its arms: round by round, a clear loser gets no more seeds, after a crash too.

Retrainings are crafted (no training): accuracies chosen so that SGD is worse than the best arm
beyond the noise after 2 seeds (the default --min-seeds) and RMSprop is not.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from study import report, retrain
from fakes import crafted, refused

RUNNER = Path(__file__).with_name("crash_runner.py")
ROOT = Path(__file__).resolve().parents[1]
# Test and final validation accuracy of each retraining, on 20 test images: multiples of 0.05. No search, so the
# race's seeds are 1-5 and the confirmation's 6-10.
ACCURACY = {"adam": {1: .50, 2: .55, 3: .60, 4: .55, 5: .50, 6: .50, 7: .55, 8: .60, 9: .55, 10: .50},
            "sgd": {1: .20, 2: .30, 3: .25, 4: .30, 5: .30},  # -30, -25 points after 2 seeds: far below the pooled noise
            # On the fresh seeds: +5, +5, +10, +10, +10 points (p 0.016): the confirmation finds it better.
            "rmsprop": {1: .55, 2: .55, 3: .65, 4: .60, 5: .60, 6: .55, 7: .60, 8: .70, 9: .65, 10: .60}}


def _retrain(calls):
    return crafted(ACCURACY, calls)


def _argv(data: Path, tmp_path: Path, out: str, *extra: str) -> list[str]:
    (tmp_path / "searches").mkdir(exist_ok=True)
    return ["--data-dir", str(data), "--directory", str(tmp_path / "searches"), "--output", str(tmp_path / out),
            "--epochs", "1", "--seeds", "5", *extra]


def test_the_report_drops_a_clear_loser_after_min_seeds_round_by_round(tiny_data, tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(retrain, "retrain", _retrain(calls))
    assert report.main(_argv(tiny_data, tmp_path, "out")) == 0
    assert calls == [(o, s) for s in (1, 2) for o in ("adam", "sgd", "rmsprop")] + \
        [(o, s) for s in (3, 4, 5) for o in ("adam", "rmsprop")] + \
        [(o, s) for s in range(6, 11) for o in ("adam", "rmsprop")]  # the confirmation, a pair per seed
    out = capsys.readouterr().out
    assert "retrainings: 0 already saved in" in out and "at most 15 to train in the race (from 2 seeds" in out
    assert "then at most 10 to confirm the challenger on seeds 6-10" in out
    assert "round 3 of 5 (seed 3): 2 of 3 arms live; sgd dropped after 2 seeds (worse than the leader)" in out
    assert "retraining seed 4, 1 epoch, 2 of 3 arms live: optimizer=adam" in out
    assert "confirmation: rmsprop and the baseline on seeds 6-10, which no search and no race trained" in out
    assert "confirmation seed 6, 1 epoch: optimizer=rmsprop" in out
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    arms = metrics["arms"]
    assert (arms["sgd"]["seeds"], arms["sgd"]["dropped_after"]) == ([1, 2], 2)
    assert (arms["rmsprop"]["seeds"], arms["rmsprop"]["dropped_after"]) == ([1, 2, 3, 4, 5], None)
    assert arms["baseline"]["seeds"] == [1, 2, 3, 4, 5]  # the race's seeds only
    rows = {r["name"]: r for r in metrics["comparison"]}
    assert rows["sgd"]["pairs"] == 2 and rows["sgd"]["test_accuracy"] == pytest.approx(0.25)
    assert rows["sgd"]["diff_vs_baseline"] == pytest.approx(-0.275)  # against the baseline's seeds 1-2
    recommendation = metrics["recommendation"]
    assert recommendation["challenger"] == "rmsprop" and metrics["config"]["min_seeds"] == 2
    confirmation = recommendation["confirmation"]
    assert confirmation["seeds"] == [6, 7, 8, 9, 10]
    assert confirmation["baseline_test"] == pytest.approx([ACCURACY["adam"][s] for s in range(6, 11)])
    assert confirmation["challenger_test"] == pytest.approx([ACCURACY["rmsprop"][s] for s in range(6, 11)])
    assert confirmation["test"] == "paired t" and confirmation["difference"] == pytest.approx(0.08)
    assert confirmation["p_value"] < 0.05 and confirmation["ci_low"] > 0 and confirmation["machine"]
    assert recommendation["beats_baseline"] and recommendation["name"] == "rmsprop"
    assert recommendation["decided_by"] == "confirmation"
    text = (tmp_path / "out" / "report.md").read_text()
    assert "**Recommended: rmsprop** (rmsprop, lr 0.001" in text
    assert "It dropped sgd after 2 seeds (worse on validation)." in text
    worse = "worse on validation than the best arm racing, beyond the noise: sgd after 2 seeds"
    assert f"**Dropped by the race:** {worse}." in text and "| 2, dropped " in text
    assert "25.0% ± 7.1 over 2 seeds" in text and "-27.5 pts (-59.3 to +4.3) over 2 shared seeds" in text
    assert "Racing: from 2 seeds on" in text and "## Confirmation" in text
    table = pd.read_csv(tmp_path / "out" / "tables" / "final_comparison.csv").set_index("configuration")
    assert table.loc["sgd", "dropped_after"] == 2 and pd.isna(table.loc["rmsprop", "dropped_after"])
    assert table.loc["sgd", "dropped_because"] == "worse than the leader" == arms["sgd"]["dropped_because"]
    assert pd.isna(table.loc["rmsprop", "dropped_because"]) and arms["rmsprop"]["dropped_because"] is None
    runs = pd.read_csv(tmp_path / "out" / "tables" / "runs.csv")
    assert (runs["seeds for"] == "confirmation").sum() == 10

    # --min-seeds 5: every arm gets every seed; only SGD's three missing seeds are trained.
    calls.clear()
    assert report.main(_argv(tiny_data, tmp_path, "out", "--min-seeds", "5")) == 0
    assert calls == [("sgd", 3), ("sgd", 4), ("sgd", 5)]
    arms = json.loads((tmp_path / "out" / "metrics.json").read_text())["arms"]
    assert arms["sgd"]["seeds"] == [1, 2, 3, 4, 5] and arms["sgd"]["dropped_after"] is None
    # Racing again on the same runs: the same decisions, SGD's later runs unused.
    assert report.main(_argv(tiny_data, tmp_path, "out")) == 0
    arms = json.loads((tmp_path / "out" / "metrics.json").read_text())["arms"]
    assert arms["sgd"]["seeds"] == [1, 2] and arms["sgd"]["dropped_after"] == 2 and len(calls) == 3


def test_with_every_challenger_dropped_nothing_is_confirmed_and_the_baseline_trains_no_more_seeds(
        tiny_data, tmp_path, monkeypatch, capsys):
    # RMSprop level with the baseline (0, -5, 0 points) for 3 seeds, far better later: seeds it never gets.
    monkeypatch.setitem(ACCURACY, "rmsprop", {1: .50, 2: .50, 3: .60, 4: .95, 5: .95})
    calls = []
    monkeypatch.setattr(retrain, "retrain", _retrain(calls))
    assert report.main(_argv(tiny_data, tmp_path, "out")) == 0
    assert calls == [(o, s) for s in (1, 2) for o in ("adam", "sgd", "rmsprop")] + [("adam", 3), ("rmsprop", 3)]
    out = capsys.readouterr().out
    assert "the race dropped every challenger after 3 seeds: nothing is left to beat the baseline, which trains no " \
        "more seeds" in out and "confirmation:" not in out
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["arms"]["rmsprop"]["dropped_because"] == "cannot beat the baseline"
    assert metrics["arms"]["baseline"]["seeds"] == [1, 2, 3]
    recommendation = metrics["recommendation"]
    assert recommendation["challenger"] is None and recommendation["name"] == "baseline"
    assert recommendation["beats_baseline"] is False and recommendation["confirmation"] is None
    text = (tmp_path / "out" / "report.md").read_text()
    assert "could not beat the baseline beyond the noise on validation: rmsprop after 3 seeds" in text
    assert "The race dropped every challenger on validation: sgd after 2 seeds (worse on validation); rmsprop after " \
        "3 seeds (could not beat the baseline on validation). Nothing is left to beat the baseline" in text


def _report(argv: list[str], point: str, crafted: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(RUNNER), "--crafted", str(crafted), point, "--", "report", *argv],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("point, saved, race_left, retrained", [
    ("run-saved:9", 9, 3, 3 + 10),  # in round 4, after the baseline's seed 4: the rest of the race, then confirmed
    ("run-saved:15", 12, 0, 7),  # mid-pair: the baseline of seed 7 saved, not its challenger, which alone trains
])
def test_sigkill_mid_race_or_mid_confirmation_then_rerun_makes_the_same_decisions_and_numbers(
        tiny_data, tmp_path, point, saved, race_left, retrained):
    crafted = tmp_path / "accuracies.json"
    crafted.write_text(json.dumps(ACCURACY))
    whole = _report(_argv(tiny_data, tmp_path, "whole"), "none", crafted)
    assert whole.returncode == 0, whole.stderr[-3000:]
    argv = _argv(tiny_data, tmp_path, "crashed")
    killed = _report(argv, point, crafted)
    assert killed.returncode == -9, killed.stderr[-3000:]
    rerun = _report(argv, "none", crafted)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"retrainings: {saved} " in rerun.stdout and f"{race_left} to train" in rerun.stdout
    # Only what is missing trains: the half of a pair saved on this machine pairs with the other half trained now.
    assert sum(", saved as " in line for line in rerun.stdout.splitlines()) == retrained
    expected, got = (json.loads((tmp_path / out / "metrics.json").read_text()) for out in ("whole", "crashed"))
    for key in ("arms", "comparison", "recommendation"):
        assert json.dumps(got[key], sort_keys=True) == json.dumps(expected[key], sort_keys=True), key
    assert got["arms"]["sgd"]["dropped_after"] == 2 and got["recommendation"]["confirmation"]["seeds"] == [6, 7, 8, 9, 10]
    assert not (tmp_path / "crashed" / "runs" / "unpaired").exists()


@pytest.mark.parametrize("extra, message", [(["--min-seeds", "1"], "--min-seeds must be >= 2"),
                                            (["--candidates", "0"], "--candidates must be > 0")])
def test_bad_racing_flags_are_one_line_and_exit_2(tmp_path, capsys, extra, message):
    (tmp_path / "searches").mkdir()
    refused(capsys, report.main, ["--directory", str(tmp_path / "searches"), "--output", str(tmp_path / "out"), *extra],
            message)
    assert not (tmp_path / "out").exists()


def _searched(directory: Path, name: str, seed: int) -> None:
    from study.config import SearchConfig

    folder = directory / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**SearchConfig(seed=seed).to_dict(), "class_names": ["a"]}))


def test_the_race_starts_past_every_search_seed_and_a_seed_that_would_repeat_a_trial_is_refused(tmp_path, capsys):
    searches = tmp_path / "searches"
    _searched(searches, "grid", 1)
    _searched(searches, "bayesian", 4)
    cfg, _ = report.resolve_config(report.build_parser().parse_args(["--directory", str(searches)]),
                                   report.find_searches(searches))
    assert (cfg.seed, list(cfg.race_seeds), list(cfg.confirmation_seeds)) == (5, [5, 6, 7, 8, 9], [10, 11, 12, 13, 14])
    argv = ["--directory", str(searches), "--output", str(tmp_path / "out")]
    err = refused(capsys, report.main, [*argv, "--seed", "2"], "--seed 2", "seeds 2-11 include seed 4",
                  "search bayesian", "use --seed 5")
    assert not (tmp_path / "out").exists() and err.startswith("python -m study.report: error: ")
    refused(capsys, report.main, [*argv, "--seed", "1", "--seeds", "2", "--confirm-seeds", "0"], "include seed 1",
            "search grid")
    # Past the confirmation's last seed or from the default on: accepted.
    for seed in ("5", "15"):
        report.resolve_config(report.build_parser().parse_args([*argv, "--seed", seed]), report.find_searches(searches))
    refused(capsys, report.main, [*argv, "--confirm-seeds", "-1"], "--confirm-seeds must be >= 0")
    refused(capsys, report.main, [*argv, "--reuse", str(tmp_path / "nowhere")], "--reuse", "no report folder there")


def test_runs_reused_from_another_report_are_copied_listed_and_not_counted(tiny_data, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(retrain, "retrain", _retrain(calls))
    first = _argv(tiny_data, tmp_path, "first", "--seeds", "2", "--confirm-seeds", "0")
    assert report.main(first) == 0 and len(calls) == 6
    calls.clear()
    # Another report of the same settings (here: more seeds) reuses the first one's runs instead of training them.
    second = [*_argv(tiny_data, tmp_path, "second", "--seeds", "3", "--min-seeds", "3", "--confirm-seeds", "0"),
              "--reuse", str(tmp_path / "first")]
    assert report.main(second) == 0
    assert sorted(calls) == [("adam", 3), ("rmsprop", 3), ("sgd", 3)]  # only seed 3 is new
    copied = [json.loads(p.read_text()) for p in (tmp_path / "second" / "runs").glob("seed[12]-*.json")]
    assert len(copied) == 6 and {r["reused_from"] for r in copied} == {str(tmp_path / "first")}
    assert all(r["environment"]["cpu"] for r in copied)  # their machine and date are theirs, kept
    metrics = json.loads((tmp_path / "second" / "metrics.json").read_text())
    provenance = metrics["provenance"]
    assert provenance["retrainings"] == 3 and provenance["training_seconds"] == pytest.approx(3.0)
    assert provenance["reused"][0]["from"] == str(tmp_path / "first") and provenance["reused"][0]["runs"] == 6
    text = (tmp_path / "second" / "report.md").read_text().split("## Provenance")[1]
    assert "| 3 retrainings of 1 epoch " in text and f"reused from `{tmp_path / 'first'}` (--reuse)" in text
    assert "6 retrainings, on Intel" in text or "6 retrainings, on " in text
    # Rerun: nothing trained, nothing copied twice.
    calls.clear()
    assert report.main(second) == 0 and calls == []


def test_a_confirmation_pairs_saved_half_is_kept_on_its_machine_kind_and_trained_again_with_its_partner_on_another(
        tiny_data, tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(retrain, "retrain", _retrain(calls))
    argv = _argv(tiny_data, tmp_path, "out", "--confirm-seeds", "2")
    assert report.main(argv) == 0
    runs = tmp_path / "out" / "runs"

    def path(optimizer: str, seed: int) -> Path:
        (found,) = [p for p in runs.glob(f"seed{seed}-*.json")
                    if json.loads(p.read_text())["hyperparameters"]["optimizer"] == optimizer]
        return found

    path("rmsprop", 6).unlink()  # the baseline's half stays, trained on this machine
    moved = path("adam", 7)
    elsewhere = json.loads(moved.read_text())
    elsewhere["environment"]["cpu"] = "another CPU"  # the baseline's half from another kind of machine
    moved.write_text(json.dumps(elsewhere))
    path("rmsprop", 7).unlink()
    calls.clear()
    capsys.readouterr()
    assert report.main(argv) == 0
    out = capsys.readouterr().out
    assert sorted(calls) == [("adam", 7), ("rmsprop", 6), ("rmsprop", 7)]
    assert "then 2 (4 if the 2 saved halves ran on another kind of machine) to confirm the challenger" in out
    assert sum("saved (on " in line and "confirmation seed" in line for line in out.splitlines()) == 2
    assert [json.loads(p.read_text())["environment"]["cpu"] for p in (runs / "unpaired").glob("*.json")] == \
        ["another CPU"]
    assert json.loads(path("adam", 7).read_text())["environment"]["cpu"] != "another CPU"
    pairs = json.loads((tmp_path / "out" / "metrics.json").read_text())["recommendation"]["confirmation"]
    assert pairs["seeds"] == [6, 7] and pairs["machine"] and "another CPU" not in pairs["machine"]
