"""benchmarks/gpu_study.py on tiny settings: the whole study's commands run, each timed, study_seconds last."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="the study runs on KERAS_BACKEND=jax")
def test_gpu_study_runs_on_a_cpu_as_a_smoke_test(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_study.py"), "--smoke", "--work-dir",
                           str(tmp_path)], capture_output=True, text=True, env=env, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert "backend: jax" in lines[0]
    for name in ("search grid", "search bayesian", "search hyperband", "report"):
        assert any(re.fullmatch(rf"{name}: \d+\.\d s", line) for line in lines), name
    assert re.fullmatch(r"study_seconds: \d+", lines[-1])
    assert "--parallel 2" in proc.stdout  # the grid's trials side by side
    for tuner in ("grid", "bayesian", "hyperband"):
        assert (tmp_path / "tuner_results" / tuner / "trials.csv").exists()
    assert (tmp_path / "reports" / "report.md").exists()
