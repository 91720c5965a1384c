"""`--parallel K`: a chief and K workers started and stopped by the command; results as in one process."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from study import search
from study.config import StudyError

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ["optimizer", "learning_rate", "dropout_1"]


def _argv(data, directory: Path, *extra) -> list[str]:
    return ["--data-dir", str(data), "--epochs", "1", "--directory", str(directory), "--optimizers", "adam,sgd",
            "--learning-rates", "0.001,0.01,0.003", *extra]


def _command(argv: list[str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "study.search", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip


def _descendants(pid: int) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        children = {p for p, pp in parents.items() if pp == parent}
        found |= children
        todo += children
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def _interrupt_mid_search(argv: list[str], sig: int) -> subprocess.CompletedProcess:
    """Start the command, send `sig` once a trial has started, and check that none of its processes is left."""
    proc = _command(argv)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "started:" in line:
            break
    assert any("started:" in line for line in lines), "".join(lines) + proc.stderr.read()
    family = _descendants(proc.pid)
    assert len(family) >= 3  # the chief and two workers at least
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    deadline = time.monotonic() + 20
    while _alive(family) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(family), f"left behind: {_alive(family)}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines) + out, err)


def test_parallel_grid_gives_the_results_of_one_process_and_names_each_trials_worker(tiny_data, tmp_path):
    one = _command(_argv(tiny_data, tmp_path / "one", "--parallel", "1"))
    two = _command(_argv(tiny_data, tmp_path / "two", "--parallel", "2"))
    for proc in (one, two):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    assert "[worker 1]" in out and "[chief] best: trial" in out
    assert re.search(r"\[worker \d\] trial \d+ \(.*\): val_accuracy .*; [1-6]/6 done", out)  # progress, as in one
    a = pd.read_csv(tmp_path / "one" / "grid" / "trials.csv").sort_values(CONFIG).reset_index(drop=True)
    b = pd.read_csv(tmp_path / "two" / "grid" / "trials.csv").sort_values(CONFIG).reset_index(drop=True)
    assert len(b) == 6 and set(b.status) == {"COMPLETED"} and len(b.drop_duplicates(CONFIG)) == 6
    pd.testing.assert_frame_equal(a[CONFIG], b[CONFIG])
    # Same seed, same initial weights and data order, whichever process trained the configuration.
    assert (a.val_accuracy - b.val_accuracy).abs().max() <= 1e-6
    assert (a.val_loss - b.val_loss).abs().max() <= 1e-5
    assert set(a.worker) == {"tuner0"} and set(b.worker) == {"tuner0", "tuner1"}


def _ended_at(project: Path) -> dict[str, float]:
    return {p.parent.name: json.loads(p.read_text())["ended_at"] for p in project.glob("trial_*/history.json")}


def test_ctrl_c_or_sigkill_leaves_no_process_and_a_rerun_resumes(tiny_data, tmp_path):
    # Begun in one process: --parallel resumes it (the number of processes is no setting of the project).
    begun = _command(_argv(tiny_data, tmp_path, "--max-trials", "2"))
    assert begun.wait(timeout=300) == 0, begun.stderr.read()[-3000:]
    first = _ended_at(tmp_path / "grid")
    assert len(first) == 2
    argv = _argv(tiny_data, tmp_path, "--parallel", "2")
    interrupted = _interrupt_mid_search(argv, signal.SIGINT)
    assert interrupted.returncode == 130, interrupted.stderr[-3000:]
    assert interrupted.stderr.count("rerun the same command to resume") == 1
    killed = _interrupt_mid_search(argv, signal.SIGKILL)
    assert killed.returncode == -9
    done = _command(argv)
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err[-3000:]
    assert "resuming" in out
    table = pd.read_csv(tmp_path / "grid" / "trials.csv")
    assert len(table) == 6 and set(table.status) == {"COMPLETED"} and len(table.drop_duplicates(CONFIG)) == 6
    ended = _ended_at(tmp_path / "grid")
    assert {k: ended[k] for k in first} == first  # the trials done before were not trained again


@pytest.mark.parametrize("extra", [["--role", "chief"], ["--role", "worker"]])
def test_parallel_is_not_for_an_explicit_chief_or_worker(extra):
    with pytest.raises(StudyError, match="--parallel starts its own chief and workers"):
        search.parse_config(["--parallel", "2", *extra])


def test_parallel_must_be_positive():
    with pytest.raises(StudyError, match="--parallel must be > 0"):
        search.parse_config(["--parallel", "0"])


def test_default_is_one_trial_at_a_time_on_a_cpu():
    cfg = search.parse_config([])
    assert search.trials_at_once(cfg, None) == 1
    assert search.trials_at_once(search.parse_config(["--parallel", "3"]), None) == 3
    assert search.trials_at_once(search.parse_config(["--parallel", "3"]), "chief") == 1
    grid_of_two = search.parse_config(["--parallel", "3", "--optimizers", "adam", "--learning-rates", "0.1,0.01"])
    assert search.trials_at_once(grid_of_two, None) == 2
