"""Keras Tuner's tuners, with what a study needs on top: per-trial histories, timings and progress lines.

The searching, storing and resuming is Keras Tuner's own. Two additions:
- every trial's per-epoch history and wall time go to `trial_<id>/history.json` (Keras Tuner
  keeps neither), and one line per finished trial reports the score and the time left;
- the grid oracle picks the next point as the first grid point not yet tried, derived from the
  trials themselves, so a resumed grid covers every point exactly once (GridSearch keeps its
  order in memory only: keras-team/keras-tuner#1055).
"""
from __future__ import annotations

import itertools
import time
from pathlib import Path

import keras_tuner
from keras_tuner.src.engine import trial as trial_module

from study import storage

HISTORY_FILE = "history.json"


class StudyGridOracle(keras_tuner.oracles.GridSearchOracle):
    """Grid order as in GridSearch (default first, last hyperparameter fastest), stateless."""

    def populate_space(self, trial_id):
        space = self.get_space().space
        axes = []
        for hp in space:
            values = list(hp.values)
            values.remove(hp.default)
            axes.append([hp.default, *values])
        for combo in itertools.product(*axes):
            values = {hp.name: v for hp, v in zip(space, combo)}
            if not self._duplicate(values):
                return {"status": trial_module.TrialStatus.RUNNING, "values": values}
        if self.ongoing_trials:
            return {"status": trial_module.TrialStatus.IDLE, "values": None}
        return {"status": trial_module.TrialStatus.STOPPED, "values": None}

    def end_trial(self, trial):
        keras_tuner.Oracle.end_trial(self, trial)  # skip GridSearchOracle's in-memory bookkeeping


class _Recording:
    """Mixin for a Keras Tuner tuner: saves histories and timings, prints a line per trial."""

    def __init__(self, *args, planned_trials: int | None = None, log=print, **kwargs):
        super().__init__(*args, **kwargs)
        self.planned_trials = planned_trials
        self._log = log
        self._started: dict[str, float] = {}
        self._histories: dict[str, dict] = {}

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        self._started[trial.trial_id] = time.monotonic()
        values = ", ".join(f"{k}={v}" for k, v in trial.hyperparameters.values.items())
        self._log(f"trial {trial.trial_id} started: {values}")

    def run_trial(self, trial, *args, **kwargs):
        histories = super().run_trial(trial, *args, **kwargs)
        self._histories[trial.trial_id] = {
            k: [float(v) for v in vals] for k, vals in histories[-1].history.items()
        }
        return histories

    def on_trial_end(self, trial):
        seconds = time.monotonic() - self._started.pop(trial.trial_id, time.monotonic())
        history = self._histories.pop(trial.trial_id, {})
        storage.write_json(
            Path(self.get_trial_dir(trial.trial_id)) / HISTORY_FILE,
            {"seconds": seconds, "epochs": len(history.get("loss", [])), "history": history},
        )
        super().on_trial_end(trial)
        self._log(self._progress_line(self.oracle.get_trial(trial.trial_id), seconds))

    def _progress_line(self, trial, seconds: float) -> str:
        if trial.status == trial_module.TrialStatus.COMPLETED:
            outcome = f"val_accuracy {trial.score:.4f}"
        else:
            reason = (trial.message or "").strip().splitlines()
            outcome = f"{trial.status}: {reason[-1] if reason else 'no reason given'}"
        line = f"trial {trial.trial_id} {outcome} in {_duration(seconds)}"
        best = self.oracle.get_best_trials(1)
        if best and best[0].status == trial_module.TrialStatus.COMPLETED:
            line += f"; best {best[0].score:.4f} (trial {best[0].trial_id})"
        done = [t for t in self.oracle.trials.values() if t.status != trial_module.TrialStatus.RUNNING]
        if self.planned_trials:
            remaining = max(0, self.planned_trials - len(done))
            per_trial = self._mean_trial_seconds()
            line += f"; {len(done)}/{self.planned_trials} done"
            if remaining and per_trial:
                line += f", about {_duration(remaining * per_trial)} left"
        return line

    def _mean_trial_seconds(self) -> float | None:
        times = []
        for trial_id in self.oracle.trials:
            path = Path(self.get_trial_dir(trial_id)) / HISTORY_FILE
            if path.exists():
                times.append(storage.read_json(path)["seconds"])
        return sum(times) / len(times) if times else None


class GridSearch(_Recording, keras_tuner.Tuner):
    def __init__(self, hypermodel, *, objective, max_trials=None, seed=None, **kwargs):
        oracle = StudyGridOracle(objective=objective, max_trials=max_trials, seed=seed)
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)


class BayesianOptimization(_Recording, keras_tuner.BayesianOptimization):
    pass


class Hyperband(_Recording, keras_tuner.Hyperband):
    pass


TUNERS = {"grid": GridSearch, "bayesian": BayesianOptimization, "hyperband": Hyperband}


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"

