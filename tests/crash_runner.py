"""Runs `study.search.main` (or `study.report.main`) and SIGKILLs itself at a chosen moment, for the crash tests.

Usage: python tests/crash_runner.py [--no-tensorflow] [--crafted FILE] POINT -- SEARCH_ARGS...
       python tests/crash_runner.py [--no-tensorflow] [--crafted FILE] POINT -- report REPORT_ARGS...
       python tests/crash_runner.py --crafted ablation POINT -- ablate ABLATE_ARGS...
--no-tensorflow makes `import tensorflow` fail in this process, as where TensorFlow is not installed
(with KERAS_BACKEND=jax or torch: on TensorFlow's own backend Keras itself cannot start then).
--crafted FILE: the report's retrainings train nothing; FILE (JSON) gives each one's accuracy,
{optimizer: {seed: accuracy}}, as test and final validation accuracy (racing tests choose them).
POINT is one of
  batch:N                  while training, at the N-th batch this process draws (mid-trial)
  trial-begin:N            as the N-th trial of this process starts (between trials)
  written:NAME:TEXT:N      just after the N-th atomic write of a file NAME containing TEXT
  replacing:NAME:N         inside the N-th atomic write of NAME, after the temporary file is
                           written and before it replaces the old file (mid-write)
  run-saved:N              just after the report saved its N-th retraining
"""
from __future__ import annotations

import os
import signal
import sys


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(point: str) -> None:
    from study import records, storage, training, tuners

    kind, *rest = point.split(":")
    count = {"n": 0}

    def hit(n: int) -> bool:
        count["n"] += 1
        return count["n"] == n

    if kind == "batch":
        original = training.Batches.__getitem__

        def getitem(self, i):
            if self.shuffle and hit(int(rest[0])):
                _die()
            return original(self, i)

        training.Batches.__getitem__ = getitem
    elif kind == "trial-begin":
        original = tuners._StudyTuner.on_trial_begin

        def on_trial_begin(self, trial):
            if hit(int(rest[0])):
                _die()
            return original(self, trial)

        tuners._StudyTuner.on_trial_begin = on_trial_begin
    elif kind == "written":
        name, text, n = rest
        original = storage.write_text

        def write_text(path, content):
            original(path, content)
            if os.path.basename(path) == name and text in content and hit(int(n)):
                _die()

        storage.write_text = write_text
    elif kind == "replacing":
        name, n = rest
        original = storage.os.replace

        def replace(src, dst):
            if os.path.basename(dst) == name and hit(int(n)):
                _die()
            return original(src, dst)

        storage.os.replace = replace
    elif kind == "run-saved":
        original = records.RunStore.save

        def save(self, run):
            path = original(self, run)
            if hit(int(rest[0])):
                _die()
            return path

        records.RunStore.save = save
    else:
        raise SystemExit(f"unknown crash point {point!r}")


def _craft(path: str) -> None:
    import json

    import numpy as np

    from study import retrain as retraining
    from study import runtime
    from study.records import Run

    if path == "ablation":  # the ablation tests' own accuracies (tests/fakes.py)
        from fakes import ablation_accuracy as accuracy
    else:
        accuracies = json.loads(open(path).read())

        def accuracy(hyperparameters, seed):
            return accuracies[hyperparameters["optimizer"]][str(seed)]

    def retrain(data, hyperparameters, seed, cfg, **kwargs):
        acc = accuracy(hyperparameters, seed)
        n = len(data.y_test)
        y_pred = np.where(np.arange(n) < round(acc * n), data.y_test, (data.y_test + 1) % data.num_classes)
        history = {"loss": [1.0], "accuracy": [0.5], "val_loss": [1.0], "val_accuracy": [acc]}
        return Run(dict(hyperparameters), seed, history, 1.0, float(np.mean(y_pred == data.y_test)), 1.0,
                   y_pred, f"w{seed}", settings=cfg.settings(cfg.backend), environment=runtime.environment())

    retraining.retrain = retrain


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[0] == "--no-tensorflow":
        sys.modules["tensorflow"] = None  # every `import tensorflow...` now raises ImportError
        args = args[1:]
    if args[0] == "--crafted":
        _craft(args[1])
        args = args[2:]
    point, sep, *argv = args
    assert sep == "--"
    if point != "none":
        _arm(point)
    from study import ablate, report, search

    if argv[:1] == ["report"]:
        raise SystemExit(report.main(argv[1:]))
    if argv[:1] == ["ablate"]:
        raise SystemExit(ablate.main(argv[1:]))
    raise SystemExit(search.main(argv))
