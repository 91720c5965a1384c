"""Keras Tuner's oracles made safe for a study: atomic state files, a reload after SIGKILL, no configuration twice.

The searching, storing and resuming is Keras Tuner's own; these oracles add:
- atomic writes of every state file (`oracle.json`, `trial.json`), and a reload that reconciles the trial
  files with `oracle.json` after a SIGKILL at any moment: a trial that ended is not re-run, a trial
  created but never recorded is forgotten and created again;
- a grid oracle that picks the first grid point not yet tried, derived from the trials themselves:
  GridSearch keeps its order in memory only, so a resumed GridSearch fails with a KeyError or stops
  early (keras-team/keras-tuner#1055);
- no configuration created twice in a project, by any tuner (`_NoRepeats`): every trial of a project
  shares its seed, so a repeat would train the very same run again;
- a failed trial that trips `max_consecutive_failed_trials` is saved before the search stops (Keras
  Tuner raises before writing it).
"""
from __future__ import annotations

import itertools
import math
import shutil
from pathlib import Path

import keras_tuner
import numpy as np
from keras_tuner.src.engine import hyperparameters as hp_module
from keras_tuner.src.engine import trial as trial_module
from keras_tuner.src.tuners import bayesian as kt_bayesian
from keras_tuner.src.tuners import hyperband as kt_hyperband

from study import storage

Status = trial_module.TrialStatus


class _CrashSafeOracle:
    """Mixin for a Keras Tuner oracle: atomic state files and a reload that survives SIGKILL."""

    def save(self):
        storage.write_json(self._get_oracle_fname(), self.get_state())

    def _save_trial(self, trial):
        storage.write_json(Path(self._get_trial_dir(trial.trial_id)) / "trial.json", trial.get_state())

    def reload(self):
        super().reload()
        known = set(self.start_order)
        for trial_id in list(self.trials):
            if trial_id not in known:  # created after oracle.json was last written: forget it
                del self.trials[trial_id]
                shutil.rmtree(Path(self._project_dir) / f"trial_{trial_id}", ignore_errors=True)
        for trial_id in list(self._retry_queue):
            trial = self.trials[trial_id]
            if trial.status in (Status.COMPLETED, Status.FAILED) and trial_id not in self.end_order:
                # It ended, but the process died before oracle.json said so: keep the result.
                self._retry_queue.remove(trial_id)
                self.end_order.append(trial_id)
                self._run_times[trial_id] += 1
        self.save()

    def end_trial(self, trial):
        try:
            super().end_trial(trial)
        except RuntimeError:  # too many consecutive failures, raised before the trial is saved
            self._save_trial(self.trials[trial.trial_id])
            self.ongoing_trials = {k: t for k, t in self.ongoing_trials.items() if t.trial_id != trial.trial_id}
            self.save()
            raise


MAX_LISTED_POINTS = 200_000  # the largest finite space listed point by point (the default Bayesian one: 3,240)


def finite_points(space) -> list[dict] | None:
    """Every configuration of a space of Choice, Boolean, Fixed and Int hyperparameters; None for any other
    (a Float, a conditional hyperparameter) or above MAX_LISTED_POINTS. Keras Tuner's own `tuner/` values
    (Hyperband's rounds) are no part of a configuration."""
    names, axes = [], []
    for hp in space:
        if hp.name.startswith("tuner/"):
            continue
        if hp.conditions or not isinstance(hp, (hp_module.Choice, hp_module.Boolean, hp_module.Fixed,
                                                hp_module.Int)):
            return None
        names.append(hp.name)
        axes.append([hp.value] if isinstance(hp, hp_module.Fixed) else list(hp.values))
    if math.prod(len(a) for a in axes) > MAX_LISTED_POINTS:
        return None
    return [dict(zip(names, combo)) for combo in itertools.product(*axes)]


class _NoRepeats:
    """Mixin for an oracle: no configuration is created twice in a project, by any tuner.

    Every trial of a project shares its seed (initial weights, data order), so a configuration tried
    again would train the very same run again. Keras Tuner records each configuration it creates
    (`_tried_so_far`; Hyperband's next round of a configuration carries `tuner/trial_id`, so it is
    a continuation, not a repeat) and its random sampling retries collisions; on top of that:
    - the tried set is rebuilt from the trials on disk when a project reloads;
    - where Keras Tuner's sampling gives up (20 collisions in a row), a finite space's untried
      points are drawn from, so a search does not stop while some are left;
    - `exhausted`: the one line that says the search ended because no untried point is left.
    """

    exhausted: str | None = None

    def reload(self):
        super().reload()
        self._tried_so_far = {self._compute_values_hash(t.hyperparameters.values) for t in self.trials.values()}

    def _untried_points(self) -> list[dict] | None:
        """The finite space's configurations not tried yet (None: not a finite space); sets `exhausted` at none."""
        points = finite_points(self.get_space().space)
        if points is None:
            return None
        untried = [p for p in points if not self._duplicate(p)]
        if not untried:
            self.exhausted = (f"all {len(points)} configurations of the search space have been tried: the search "
                              "ends here, training none of them twice")
        return untried

    def _random_values(self):
        values = super()._random_values()
        if values is not None:
            return values
        untried = self._untried_points()
        if not untried:
            return None
        # Seeded by the project's seed and the trial count: a resumed search draws what the uninterrupted one did.
        rng = np.random.default_rng([self.seed, len(self.trials)])
        return untried[int(rng.integers(len(untried)))]


class GridOracle(_NoRepeats, _CrashSafeOracle, keras_tuner.Oracle):
    """GridSearch's order (defaults first, the last hyperparameter fastest), derived from the trials."""

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
                return {"status": Status.RUNNING, "values": values}
        if self.ongoing_trials:
            return {"status": Status.IDLE, "values": None}
        if self.max_trials and len(self.trials) < self.max_trials:  # without --max-trials, the grid is the plan
            self.exhausted = (f"all {len(self.trials)} points of the grid have been tried: the search ends here, "
                              f"before --max-trials {self.max_trials}")
        return {"status": Status.STOPPED, "values": None}


class BayesianOracle(_NoRepeats, _CrashSafeOracle, kt_bayesian.BayesianOptimizationOracle):
    """Keras Tuner's Bayesian optimisation, whose Gaussian process never proposes a configuration already tried."""

    def populate_space(self, trial_id):
        response = super().populate_space(trial_id)
        if response["status"] != Status.RUNNING or not self._duplicate(response["values"]):
            return response
        # Only the Gaussian process proposes a repeat (the random path retries collisions): its optimum,
        # snapped to the discrete values, is not checked against the trials (keras-team/keras-tuner#608),
        # and on a discrete space it lands on the same point again and again. The proposal is replaced by
        # the untried point that the same acquisition (mu - beta * sigma of the Gaussian process just
        # fitted) ranks best, not by a random one: what the model learned still chooses, and on the finite
        # spaces of study every untried point can be ranked exactly (3,240 in the default space).
        candidates = self._untried_points()
        if candidates is None:  # a space too large to list (a Float, say): a random untried point
            return self._random_populate_space()
        if not candidates:
            return {"status": Status.STOPPED, "values": None}
        space = self._nonfixed_space()
        x = np.array([[hp.value_to_prob(c.get(hp.name, hp.default)) for hp in space] for c in candidates])
        mu, sigma = self.gpr.predict(x, return_std=True)
        best = int(np.argmin(mu - self.beta * sigma))
        return {"status": Status.RUNNING, "values": candidates[best]}


class HyperbandOracle(_NoRepeats, _CrashSafeOracle, kt_hyperband.HyperbandOracle):
    pass
