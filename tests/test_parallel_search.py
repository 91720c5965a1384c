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


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}


def _command(argv: list[str], sigint=signal.SIG_DFL) -> subprocess.Popen:
    """The command, with SIGINT as in a terminal (by default): pytest started in the background ignores it."""
    return subprocess.Popen([sys.executable, "-m", "study.search", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))  # fmt: skip


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
    assert re.search(r"\[worker \d\] trial \d+ \(.*\): val_accuracy .*; [1-6]/6 done", out), out  # as in one
    a = pd.read_csv(tmp_path / "one" / "grid" / "trials.csv").sort_values(CONFIG).reset_index(drop=True)
    b = pd.read_csv(tmp_path / "two" / "grid" / "trials.csv").sort_values(CONFIG).reset_index(drop=True)
    assert len(b) == 6 and set(b.status) == {"COMPLETED"} and len(b.drop_duplicates(CONFIG)) == 6
    pd.testing.assert_frame_equal(a[CONFIG], b[CONFIG])
    # Same seed, same initial weights and data order, whichever process trained the configuration.
    assert (a.val_accuracy - b.val_accuracy).abs().max() <= 1e-6
    assert (a.val_loss - b.val_loss).abs().max() <= 1e-5
    assert set(a.worker) == {"tuner0"} and set(b.worker) == {"tuner0", "tuner1"}


LATE_WORKERS = """
import sys, time
from pathlib import Path
from study import parallel_search, search

start, marker = parallel_search._start, Path(sys.argv[1])
def late(argv, port, tuner_id, workers):
    deadline = time.monotonic() + 120
    while tuner_id != "chief" and not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return start(argv, port, tuner_id, workers)
parallel_search._start = late
sys.exit(search.main(sys.argv[2:]))
"""


def test_workers_that_start_after_the_chief_wrote_the_project_plan_every_trial(tiny_data, tmp_path):
    # A busy machine: the workers start once the chief has written the project's files (tuner0.json, which
    # makes Keras Tuner reload). A worker that read them took an empty space and printed "1/1 done".
    argv = _argv(tiny_data, tmp_path, "--parallel", "2")
    done = subprocess.run([sys.executable, "-c", LATE_WORKERS, str(tmp_path / "grid" / "tuner0.json"), *argv],
                          capture_output=True, text=True, env=_env(), timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    progress = re.findall(r"\[worker \d\] trial \d+ \(.*\): val_accuracy .*; (\d+)/(\d+) done", done.stdout)
    assert len(progress) == 6 and {total for _, total in progress} == {"6"}, done.stdout
    # Two trials ending at once may both count the other: the last one to end counts all six.
    assert {int(k) for k, _ in progress} <= set(range(1, 7)) and max(int(k) for k, _ in progress) == 6
    trials = pd.read_csv(tmp_path / "grid" / "trials.csv")
    assert len(trials) == 6 and set(trials.status) == {"COMPLETED"}


def _catches_sigint(pid: int) -> bool:
    """Whether the process has a handler of its own for SIGINT (Python's KeyboardInterrupt)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False


def _children(pid: int) -> set[int]:
    """Its own children: the descendants whose parent it is."""
    return {p for p in _descendants(pid) if Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]
            == str(pid)}


def test_children_of_a_command_started_in_the_background_still_stop_on_its_sigint(tiny_data, tmp_path):
    # `study.search --parallel 2 &` in a script: the command inherits SIGINT ignored. Its children must not:
    # SIGINT is how it stops them when one fails, each saving what it can.
    proc = _command(_argv(tiny_data, tmp_path, "--parallel", "2"), sigint=signal.SIG_IGN)
    try:
        for line in proc.stdout:
            if "started:" in line:
                break
        children = _children(proc.pid)  # the chief and two workers
        assert len(children) == 3 and not _catches_sigint(proc.pid)
        assert all(_catches_sigint(pid) for pid in children)
    finally:
        proc.kill()
        proc.communicate(timeout=60)


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
    assert interrupted.returncode == 130, interrupted.stdout[-3000:] + interrupted.stderr[-3000:]
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
