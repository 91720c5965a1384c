"""Keras's backends: JAX without TensorFlow (search, its resume after SIGKILL, report), the backend recorded and a
project of another backend refused; the GPU levers (several steps per execution, data on the device, retrainings
side by side) run on a CPU, where they must compute exactly what the default path computes."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes import refused

from study import jobs as jobs_lib
from study import retrain, runtime, search, storage
from study.config import BASELINE, DataConfig, ReportConfig, SearchConfig, StudyError
from study.records import RunStore

RUNNER = Path(__file__).with_name("crash_runner.py")
ROOT = Path(__file__).resolve().parents[1]
needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None,
                               reason="JAX is not installed (pip install -e '.[jax]' or '.[test]')")


@pytest.fixture(scope="session")
def jax_cache(tmp_path_factory) -> Path:
    """One JAX compilation cache for the session's JAX processes: each compiles the CNN's steps once, not per run."""
    return tmp_path_factory.mktemp("jax-cache")


def _without_tensorflow(point: str, argv: list[str], cache: Path) -> subprocess.CompletedProcess:
    """The command on JAX in a process where `import tensorflow` fails, as where it is not installed."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "jax",
           "JAX_COMPILATION_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, str(RUNNER), "--no-tensorflow", point, "--", *argv], capture_output=True,
                          text=True, env=env, timeout=600)


def _metrics(project: Path) -> pd.DataFrame:
    table = pd.read_csv(project / "trials.csv", dtype={"trial_id": str})
    return table[["trial_id", "optimizer", "learning_rate", "status", "val_accuracy", "val_loss"]]


@needs_jax
def test_jax_search_without_tensorflow_resumes_after_sigkill_to_the_same_numbers(tiny_data, tmp_path, jax_cache,
                                                                                   capsys):
    # Adam and SGD: with the report's test, every optimizer's steps are compiled once in the session (jax_cache).
    common = ["--data-dir", str(tiny_data), "--epochs", "2", "--optimizers", "adam,sgd", "--learning-rates", "0.001"]
    reference = _without_tensorflow("none", [*common, "--directory", str(tmp_path / "reference")], jax_cache)
    assert reference.returncode == 0, reference.stderr[-3000:]
    argv = [*common, "--directory", str(tmp_path / "crashed")]
    killed = _without_tensorflow("batch:4", argv, jax_cache)  # 2 batches an epoch: the first trial's 2nd epoch
    assert killed.returncode == -9, killed.stderr[-3000:]
    resumed = _without_tensorflow("none", argv, jax_cache)
    assert resumed.returncode == 0 and "resuming" in resumed.stdout, resumed.stderr[-3000:]

    project = tmp_path / "crashed" / "grid"
    expected, got = _metrics(tmp_path / "reference" / "grid"), _metrics(project)
    assert got.status.tolist() == ["COMPLETED"] * 2
    # The same seed gives the same numbers on JAX's CPU, across processes and through a resume.
    pd.testing.assert_frame_equal(got, expected, check_exact=False, atol=1e-6)
    assert json.loads((project / "config.json").read_text())["backend"] == "jax"
    for path in project.glob("trial_*/history.json"):
        assert json.loads(path.read_text())["environment"]["backend"] == "jax"

    # Back on TensorFlow (this process): the project is refused like a changed setting, before any training.
    refused(capsys, search.main, argv,
            "different backend (it ran on jax, this is tensorflow: KERAS_BACKEND=jax resumes it)")


@needs_jax
def test_jax_report_without_tensorflow(tiny_data, tmp_path, jax_cache):
    (tmp_path / "searches").mkdir()
    argv = ["report", "--data-dir", str(tiny_data), "--directory", str(tmp_path / "searches"),
            "--output", str(tmp_path / "out"), "--epochs", "1", "--seeds", "1", "--confirm-seeds", "1"]
    done = _without_tensorflow("none", argv, jax_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "out"
    assert json.loads((out / "config.json").read_text())["backend"] == "jax"
    runs = [json.loads(p.read_text()) for p in (out / "runs").glob("seed*.json")]
    assert len(runs) == 3 + 2 and {r["settings"]["backend"] for r in runs} == {"jax"}  # the race's, a confirmed pair
    provenance = (out / "report.md").read_text().split("## Provenance")[1]
    assert "backend jax" in provenance
    metrics = json.loads((out / "metrics.json").read_text())
    assert {row["name"] for row in metrics["comparison"]} == {"baseline", "sgd", "rmsprop"}


def test_backend_is_what_keras_will_use_without_importing_it(tmp_path):
    home = tmp_path / "keras_home"
    home.mkdir()

    def backend(**env: str) -> str:
        environ = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "KERAS_HOME")}
        code = "import sys; from study import runtime; print(runtime.keras_backend(), 'keras' in sys.modules)"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                              env={**environ, "PYTHONPATH": str(ROOT), **env})
        assert proc.returncode == 0, proc.stderr
        name, imported = proc.stdout.split()
        assert imported == "False"
        return name

    assert backend(KERAS_HOME=str(home)) == "tensorflow"  # no keras.json: Keras's default
    (home / "keras.json").write_text(json.dumps({"backend": "jax", "floatx": "float32"}))
    assert backend(KERAS_HOME=str(home)) == "jax"
    assert backend(KERAS_HOME=str(home), KERAS_BACKEND="torch") == "torch"  # the variable wins over the file
    assert backend(KERAS_HOME=str(home), KERAS_BACKEND="") == "jax"  # as Keras: an empty variable is ignored
    (home / "keras.json").write_text("{not json")
    assert backend(KERAS_HOME=str(home)) == "tensorflow"
    assert runtime.keras_backend() == "tensorflow"  # Keras is imported here: its own answer
    assert runtime.environment()["backend"] == "tensorflow"


def test_a_project_from_before_the_backend_was_recorded_resumes_on_tensorflow_only(tmp_path):
    cfg = SearchConfig(directory=str(tmp_path))
    cfg.project_dir.mkdir(parents=True)
    old = cfg.to_dict()
    del old["backend"]  # config.json as study wrote it before it ran on other backends
    storage.write_json(cfg.project_dir / "config.json", {**old, "class_names": ["a", "b"], "command": "x"})
    assert SearchConfig.from_dict(old).backend == "tensorflow"
    assert search.check_project(cfg) is True
    with pytest.raises(StudyError, match="different backend .*KERAS_BACKEND=tensorflow resumes it"):
        search.check_project(SearchConfig(directory=str(tmp_path), backend="jax"))


def test_tensorboard_is_refused_on_other_backends_in_one_line():
    SearchConfig(tensorboard="tb").validate()
    with pytest.raises(StudyError, match="--tensorboard needs Keras's TensorFlow backend, not jax"):
        SearchConfig(tensorboard="tb", backend="jax").validate()


# --- the GPU levers, run on a CPU --------------------------------------------------------------------------

_SAME_COMPUTATION = """if True:
    import hashlib, json, os, sys
    if sys.argv[1] == "no-tensorflow":
        sys.modules["tensorflow"] = None
    import numpy as np
    import keras
    from study import training
    from study.model import build_model
    rng = np.random.default_rng(0)
    # tiny_data's shapes (2 batches, the last one short; 20 validation images): the steps the JAX search compiled
    x = rng.integers(0, 256, size=(80, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=80).astype(np.int32)
    reads = []
    indices = training.Batches.indices
    def recording(self, i):
        idx = indices(self, i)
        if self.shuffle:
            reads.append(idx.tolist())
        return idx
    training.Batches.indices = recording
    keras.utils.set_random_seed(3)
    model = build_model((32, 32, 3), 10)
    history = training.fit(model, x, y, validation_data=(x[:20], y[:20]), epochs=3, seed=5, verbose=0)
    proba = training.predict_proba(model, x[:20])
    weights = hashlib.sha1(b"".join(np.asarray(w).tobytes() for w in model.get_weights())).hexdigest()
    print(json.dumps({"steps": model.steps_per_execution, "history": history.history, "weights": weights,
                      "proba": hashlib.sha1(proba.tobytes()).hexdigest(), "reads": reads[1:]}))  # [0]: the build's
"""


def _batches_in_order(epochs: int) -> list[list[int]]:
    """The batches `training.Batches` makes for the script above: what every path must read, in this order."""
    from study.training import Batches

    batches = Batches(np.zeros((80, 1)), np.zeros(80), 64, shuffle=True, seed=5)  # the order: length and seed
    order = []
    for _ in range(epochs):
        order += [batches.indices(i).tolist() for i in range(len(batches))]
        batches.on_epoch_end()
    return order


def _train(backend: str, cache: Path, **env: str) -> dict:
    environ = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT), "KERAS_BACKEND": backend,
               "JAX_COMPILATION_CACHE_DIR": str(cache), **env}
    tensorflow = "no-tensorflow" if backend != "tensorflow" else "tensorflow"
    proc = subprocess.run([sys.executable, "-c", _SAME_COMPUTATION, tensorflow], capture_output=True, text=True,
                          env=environ, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("backend", ["tensorflow", pytest.param("jax", marks=needs_jax)])
def test_gpu_levers_compute_exactly_what_the_default_path_computes(backend, jax_cache):
    default = _train(backend, jax_cache)
    levers = _train(backend, jax_cache, STUDY_STEPS_PER_EXECUTION="3", STUDY_DATA_ON_DEVICE="1")  # 3: past an epoch
    assert (default["steps"], levers["steps"]) == (1, 3)
    assert default["reads"] == levers["reads"] == _batches_in_order(3)  # the seed's order, epoch after epoch
    for key in ("history", "weights", "proba"):
        assert levers[key] == default[key], key


def test_retrainings_side_by_side_are_the_runs_trained_one_after_another(tiny_data, tmp_path):
    from study.data import load_dataset

    cfg = ReportConfig(epochs=1, data=DataConfig(data_dir=str(tiny_data)), parallel=2)
    data = load_dataset(cfg.data, keep_test="encoded")
    sgd = {**BASELINE.hyperparameters(), "optimizer": "sgd", "learning_rate": 0.01}
    todo = [(BASELINE.hyperparameters(), 1), (sgd, 1), (BASELINE.hyperparameters(), 2)]
    lines: list[str] = []
    stores = {}
    for parallel in (1, 2):
        stores[parallel] = RunStore(tmp_path / f"runs{parallel}", cfg.settings("tensorflow"))
        jobs = [retrain.Job((job,)) for job in todo[:2]] + [retrain.Job((todo[2], (sgd, 2)), "confirmation")]
        jobs_lib.run_jobs(data, stores[parallel], jobs, dataclasses.replace(cfg, parallel=parallel),
                         log=lines.append, verbose=0)
    assert "retraining 2 at a time, side by side (--parallel)" in lines
    for hp, seed in [*todo, (sgd, 2)]:
        one, side = stores[1].load(hp, seed), stores[2].load(hp, seed)
        assert side.initial_weights == one.initial_weights and side.history == one.history
        np.testing.assert_array_equal(side.y_pred, one.y_pred)
        assert stores[2].weights_path(hp, seed).exists()


def test_gpu_benchmark_runs_on_a_cpu_as_a_smoke_test():
    # On the default backend with a step count above 1: the TensorFlow path the GPU would take, on a few batches.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_throughput.py"), "--smoke"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "Keras backend: tensorflow" in out and "device: cpu" in out
    assert "Keras's defaults (1 step per execution, batches from the host)" in out
    assert "2 steps per execution, batches from the host" in out
    assert "k=2:" in out and "1-epoch baseline on 192 images" in out
