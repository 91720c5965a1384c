"""One project, one process: a second search or report on the same folder is refused; a dead holder's lock is taken."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fakes import refused

from study import locks, report, search

ROOT = Path(__file__).resolve().parents[1]
HOLDER = """
import sys, time
from study import locks
with locks.hold(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder():
    """Start a process that holds a folder's lock, as a running search or report would."""
    started = []

    def start(folder: Path, command: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), command], stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        started.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _search_args(tiny_data, tmp_path):
    return ["--data-dir", str(tiny_data), "--epochs", "1", "--max-trials", "1", "--directory", str(tmp_path / "runs")]


def test_a_second_search_on_a_held_project_is_refused_naming_the_holder(tiny_data, tmp_path, holder, capsys):
    proc = holder(tmp_path / "runs" / "grid", "python -m study.search --epochs 1")
    refused(capsys, search.main, _search_args(tiny_data, tmp_path),
            f"in use by process {proc.pid} (python -m study.search --epochs 1)")
    assert not (tmp_path / "runs" / "grid").exists()  # nothing written


def test_a_second_report_on_a_held_output_is_refused(tiny_data, tmp_path, holder, capsys):
    output = tmp_path / "report"
    proc = holder(output, "python -m study.report --seeds 2")
    (tmp_path / "none").mkdir()  # no searches: the report would retrain the notebook's optimizers
    argv = ["--directory", str(tmp_path / "none"), "--output", str(output), "--data-dir", str(tiny_data),
            "--epochs", "1", "--seeds", "1"]
    refused(capsys, report.main, argv, f"in use by process {proc.pid}")
    assert not output.exists()


def test_the_lock_of_a_killed_process_is_taken_over_silently(tiny_data, tmp_path, holder, capsys):
    proc = holder(tmp_path / "runs" / "grid", "python -m study.search")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert locks.lock_path(tmp_path / "runs" / "grid").exists()  # left behind
    assert search.main(_search_args(tiny_data, tmp_path)) == 0
    captured = capsys.readouterr()
    assert "in use" not in captured.out + captured.err
    assert len(pd.read_csv(tmp_path / "runs" / "grid" / "trials.csv")) == 1
    assert not locks.lock_path(tmp_path / "runs" / "grid").exists()  # released as the search ended


def test_another_project_in_the_same_directory_is_not_held(tiny_data, tmp_path, holder):
    holder(tmp_path / "runs" / "bayesian", "python -m study.search --tuner bayesian")
    assert search.main(_search_args(tiny_data, tmp_path)) == 0


def test_a_process_started_by_the_holder_runs_under_its_lock(tmp_path, monkeypatch):
    monkeypatch.setenv(locks.HELD_BY_PARENT, str(os.getppid()))
    assert locks.held_by_parent()
    monkeypatch.setenv(locks.HELD_BY_PARENT, str(os.getpid()))  # anyone else's pid: not its parent
    assert not locks.held_by_parent()


def test_the_lock_file_sits_beside_the_folder_and_git_ignores_it(tmp_path):
    assert locks.lock_path(tmp_path / "runs" / "grid") == tmp_path / "runs" / ".grid.lock"
    for path in ("tuner_results/.grid.lock", ".reports.lock"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0, path


def test_a_lock_released_leaves_no_trace(tmp_path):
    with locks.hold(tmp_path / "a" / "b" / "project", "cmd"):
        assert locks.lock_path(tmp_path / "a" / "b" / "project").exists()
    assert not (tmp_path / "a").exists()  # the folders it made, empty again, are gone
    (tmp_path / "keep").mkdir()
    with locks.hold(tmp_path / "keep" / "project", "cmd"):
        (tmp_path / "keep" / "project").mkdir()
    assert (tmp_path / "keep" / "project").is_dir() and not locks.lock_path(tmp_path / "keep" / "project").exists()
