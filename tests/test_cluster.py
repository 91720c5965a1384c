"""The report on a Dask cluster: the same runs and decisions as on one machine, a killed worker's job run elsewhere."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes import refused

from study import cluster, report
from study.config import DataConfig, ReportConfig, StudyError

distributed = pytest.importorskip("distributed", reason="dask[distributed] is in the test extra")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dask_cluster():
    """Two worker processes of one thread each, on loopback."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as local:
        yield local


def _argv(data: Path, tmp_path: Path, out: str, *extra: str) -> list[str]:
    (tmp_path / "searches").mkdir(exist_ok=True)
    return ["--data-dir", str(data), "--directory", str(tmp_path / "searches"), "--output", str(tmp_path / out),
            "--epochs", "1", "--seeds", "3", "--confirm-seeds", "2", "--batch-size", "16", *extra]


def _report(tmp_path: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """The report in a fresh process: TensorFlow's thread counts are set once per process, and other tests set theirs."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "study.report", *argv], cwd=tmp_path, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)


def _runs(folder: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((folder / "runs").glob("seed*.json"))}


def _numbers(metrics: dict) -> dict:
    """metrics.json less what may differ between a cluster and one machine: timings, machines, the command."""
    config = {k: v for k, v in metrics["config"].items() if k not in ("scheduler", "threads", "output")}
    return {**{k: v for k, v in metrics.items() if k not in ("provenance", "config", "arms", "comparison")},
            "config": config,
            "arms": {n: {k: v for k, v in a.items() if k != "seconds"} for n, a in metrics["arms"].items()},
            "comparison": [{k: v for k, v in r.items() if k != "seconds"} for r in metrics["comparison"]]}


@pytest.mark.slow
def test_a_report_through_two_dask_workers_is_the_report_of_one_machine(tiny_data, tmp_path, dask_cluster):
    threads = str(os.cpu_count())  # what the cluster's jobs set by default: this machine's
    local = _report(tmp_path, _argv(tiny_data, tmp_path, "local", "--threads", threads))
    assert local.returncode == 0, local.stdout[-3000:]
    assert report.main(_argv(tiny_data, tmp_path, "dask", "--scheduler", dask_cluster.scheduler_address)) == 0
    local, dask = _runs(tmp_path / "local"), _runs(tmp_path / "dask")
    assert local.keys() == dask.keys() and len(local) > 6  # the race's and the confirmation's
    for name, run in local.items():
        theirs = dask[name]
        assert (theirs["history"], theirs["test_accuracy"], theirs["y_pred"], theirs["initial_weights"]) == \
            (run["history"], run["test_accuracy"], run["y_pred"], run["initial_weights"]), name
        assert run["worker"] is None and theirs["worker"].startswith("tcp://127.0.0.1:")
    metrics = [json.loads((tmp_path / side / "metrics.json").read_text()) for side in ("local", "dask")]
    assert _numbers(metrics[0]) == _numbers(metrics[1])
    assert metrics[1]["config"]["scheduler"] == dask_cluster.scheduler_address
    assert len({run["worker"] for run in dask.values()}) == 2  # both workers trained


@pytest.mark.slow
def test_a_worker_killed_mid_retraining_has_its_job_run_elsewhere_with_the_same_numbers(tiny_data, tmp_path,
                                                                                       dask_cluster):
    argv = _argv(tiny_data, tmp_path, "killed", "--scheduler", dask_cluster.scheduler_address, "--epochs", "3")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    command = subprocess.Popen([sys.executable, "-m", "study.report", *argv], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with distributed.Client(dask_cluster.scheduler_address, set_as_default=False) as watcher:
        pids = watcher.run(os.getpid)
        deadline = time.monotonic() + 300
        busy = []
        while not busy and time.monotonic() < deadline and command.poll() is None:
            busy = [worker for worker, tasks in watcher.processing().items() if tasks]
            time.sleep(0.2)
        assert busy, "no job ever ran"
        os.kill(pids[busy[0]], signal.SIGKILL)
    out, _ = command.communicate(timeout=600)
    assert command.returncode == 0, out[-3000:]
    whole = _report(tmp_path, _argv(tiny_data, tmp_path, "whole", "--threads", str(os.cpu_count()), "--epochs", "3"))
    assert whole.returncode == 0, whole.stdout[-3000:]
    killed, whole = _runs(tmp_path / "killed"), _runs(tmp_path / "whole")
    assert killed.keys() == whole.keys()
    for name in whole:
        assert killed[name]["test_accuracy"] == whole[name]["test_accuracy"] and \
            killed[name]["y_pred"] == whole[name]["y_pred"], name


def test_an_unreachable_scheduler_is_one_line_and_exit_2_before_any_image_is_decoded(tiny_data, tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    refused(capsys, report.main, _argv(tiny_data, tmp_path, "out", "--scheduler", f"tcp://127.0.0.1:{port}"),
            f"--scheduler tcp://127.0.0.1:{port}: no Dask scheduler answered within 10 s")
    assert not (tmp_path / "out").exists()


class _Connection:
    """A stand-in for a Dask client: what check_workers asks of one."""

    def __init__(self, answers: dict):
        self.answers = answers

    def scheduler_info(self):
        return {"workers": {"tcp://a:1": {}, "tcp://b:2": {}}}

    def run(self, fn, *args):
        return {worker: self.answers.get((fn.__name__, worker), fn(*args)) for worker in ("tcp://a:1", "tcp://b:2")}


def test_a_worker_of_another_study_or_that_cannot_read_the_data_is_refused_by_name(tmp_path):
    cfg = ReportConfig(data=DataConfig(data_dir=str(tmp_path)))
    cluster.check_workers(_Connection({}), cfg, "tcp://s:1")  # the same study, the data readable: accepted
    other = {**cluster.fingerprint(), "study": "0" * 16}
    with pytest.raises(StudyError, match="worker tcp://b:2 runs another study 0000000000000000"):
        cluster.check_workers(_Connection({("fingerprint", "tcp://b:2"): other}), cfg, "tcp://s:1")
    keras = {**cluster.fingerprint(), "keras": "2.0.0"}
    with pytest.raises(StudyError, match="worker tcp://a:1 runs another keras 2.0.0"):
        cluster.check_workers(_Connection({("fingerprint", "tcp://a:1"): keras}), cfg, "tcp://s:1")
    with pytest.raises(StudyError, match="worker tcp://a:1 cannot read the data: no such file"):
        cluster.check_workers(_Connection({("_readable", "tcp://a:1"): "no such file or directory x"}), cfg, "s")
    assert cluster._readable(str(tmp_path / "missing")).startswith("no such file or directory")


def test_scheduler_without_dask_installed_is_a_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(StudyError, match=r"pip install -e '\.\[distributed\]'"):
        cluster.connect("tcp://127.0.0.1:1", ReportConfig())


@pytest.mark.slow
def test_arrays_in_memory_reach_the_workers_once_and_a_study_reports_through_them(tmp_path, dask_cluster):
    import numpy as np

    import study

    rng = np.random.default_rng(0)
    y, yt = np.arange(90) % 3, np.arange(18) % 3
    x = (rng.integers(0, 60, (90, 12, 12, 3)) + 60 * y[:, None, None, None]).astype(np.uint8)
    xt = (rng.integers(0, 60, (18, 12, 12, 3)) + 60 * yt[:, None, None, None]).astype(np.uint8)
    s = study.Study(study.from_arrays(x, y, xt, yt), directory=tmp_path / "none", output=tmp_path / "out")
    (tmp_path / "none").mkdir()
    rep = s.report(epochs=1, seeds=2, confirm_seeds=0, batch_size=16, scheduler=dask_cluster.scheduler_address)
    runs = [json.loads(p.read_text()) for p in (tmp_path / "out" / "runs").glob("seed*.json")]
    assert len(runs) == 6 and all(r["worker"].startswith("tcp://127.0.0.1:") for r in runs)
    assert rep.metrics["config"]["data"]["data_dir"].startswith("arrays:sha1:")
