"""Keras Tuner's chief/worker mode on 127.0.0.1: a chief and two workers finish one study together."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from study import search
from study.config import StudyError

RUNNER = Path(__file__).with_name("crash_runner.py")
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(argv: list[str], log: Path, point: str = "none") -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(RUNNER), point, "--", *argv], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env=env)  # fmt: skip


def _wait(proc: subprocess.Popen, log: Path, expect: int = 0) -> None:
    try:
        code = proc.wait(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"timed out:\n{log.read_text()[-3000:]}")
    assert code == expect, f"exit {code}:\n{log.read_text()[-3000:]}"


def _workers_of(project: Path) -> dict[str, str]:
    return {p.parent.name: json.loads(p.read_text())["tuner_id"] for p in project.glob("trial_*/history.json")}


@pytest.mark.parametrize("tuner", ["grid", "bayesian"])
def test_chief_and_two_workers_run_every_trial_once(tiny_data, tmp_path, tuner):
    oracle = f"127.0.0.1:{_free_port()}"
    argv = ["--tuner", tuner, "--data-dir", str(tiny_data), "--epochs", "1", "--directory", str(tmp_path),
            "--learning-rates", "0.001,0.01,0.0001", "--optimizers", "adam,sgd", "--oracle", oracle]
    if tuner == "bayesian":
        argv += ["--max-trials", "5", "--initial-points", "2"]
    chief = _start([*argv, "--role", "chief"], tmp_path / "chief.log")
    workers = [_start([*argv, "--role", "worker", "--worker-id", str(i)], tmp_path / f"worker{i}.log")
               for i in range(2)]  # fmt: skip
    for i, worker in enumerate(workers):
        _wait(worker, tmp_path / f"worker{i}.log")
    _wait(chief, tmp_path / "chief.log")

    project = tmp_path / tuner
    table = pd.read_csv(project / "trials.csv", dtype={"trial_id": str})
    expected = 6 if tuner == "grid" else 5
    assert len(table) == expected and set(table.status) == {"COMPLETED"}
    configs = list(zip(table.optimizer, table.learning_rate, table.dropout_1))
    assert len(set(configs)) == expected  # every trial ran once, no configuration twice
    workers_used = _workers_of(project)
    assert sorted(workers_used) == sorted(f"trial_{t}" for t in table.trial_id)
    assert set(workers_used.values()) == {"tuner0", "tuner1"}
    assert "serving the" in (tmp_path / "chief.log").read_text()


@pytest.mark.slow
def test_a_worker_that_dies_mid_trial_is_replaced_by_one_with_the_same_id(tiny_data, tmp_path):
    oracle = f"127.0.0.1:{_free_port()}"
    argv = ["--tuner", "grid", "--data-dir", str(tiny_data), "--epochs", "1", "--directory", str(tmp_path),
            "--optimizers", "adam,sgd", "--learning-rates", "0.001,0.01", "--oracle", oracle]
    chief = _start([*argv, "--role", "chief"], tmp_path / "chief.log")
    dying = _start([*argv, "--role", "worker", "--worker-id", "0"], tmp_path / "dying.log", point="batch:3")
    _wait(dying, tmp_path / "dying.log", expect=-9)
    other = _start([*argv, "--role", "worker", "--worker-id", "1"], tmp_path / "worker1.log")
    again = _start([*argv, "--role", "worker", "--worker-id", "0"], tmp_path / "worker0.log")
    for proc, name in ((other, "worker1"), (again, "worker0"), (chief, "chief")):
        _wait(proc, tmp_path / f"{name}.log")
    table = pd.read_csv(tmp_path / "grid" / "trials.csv")
    assert len(table) == 4 and set(table.status) == {"COMPLETED"}
    assert len(set(zip(table.optimizer, table.learning_rate))) == 4


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--oracle", "127.0.0.1:8000"], "go with --role"),
        (["--role", "worker", "--oracle", "nohost"], "HOST:PORT"),
        (["--role", "worker", "--worker-id", "-1"], "--worker-id must be >= 0"),
        (["--role", "worker", "--overwrite"], "a worker must not delete"),
    ],
)
def test_bad_distribution_flags(extra, message):
    with pytest.raises(StudyError, match=message):
        search.parse_config(extra)


def test_flags_set_keras_tuner_environment(monkeypatch):
    # A private copy of the environment: the variables set here must not make later tests distributed.
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if not k.startswith("KERASTUNER_")})
    assert search.distributed_role(search.parse_config([])) is None
    cfg = search.parse_config(["--role", "worker", "--worker-id", "3"])
    assert search.distributed_role(cfg) == "worker"
    assert os.environ["KERASTUNER_TUNER_ID"] == "tuner3"
    assert os.environ["KERASTUNER_ORACLE_IP"] == "127.0.0.1"  # loopback unless told otherwise
    assert search.distributed_role(search.parse_config(["--role", "chief", "--oracle", "0.0.0.0:9001"])) == "chief"
    assert os.environ["KERASTUNER_ORACLE_PORT"] == "9001"
