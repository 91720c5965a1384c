"""Keras Tuner's tuners, with what a study needs on top: crash safety, histories, timings and progress.

The searching, storing and resuming is Keras Tuner's own; the oracles and tuners here add:
- atomic writes of every state file (`oracle.json`, `trial.json`, `tuner0.json`), and a reload
  that reconciles the trial files with `oracle.json` after a SIGKILL at any moment: a trial that
  ended is not re-run, a trial created but never recorded is forgotten and created again;
- a grid oracle that picks the first grid point not yet tried, derived from the trials
  themselves: GridSearch keeps its order in memory only, so a resumed GridSearch fails with a
  KeyError or stops early (keras-team/keras-tuner#1055);
- no configuration created twice in a project, by any tuner (`_NoRepeats`): every trial of a
  project shares its seed, so a repeat would train the very same run again;
- a failed trial that trips `max_consecutive_failed_trials` is saved before the search stops
  (Keras Tuner raises before writing it);
- each trial's per-epoch history and wall time in `trial_<id>/history.json` (Keras Tuner keeps
  neither), and one progress line per trial with the time left.
"""
from __future__ import annotations

import concurrent.futures
import copy
import itertools
import math
import os
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import keras
import keras_tuner
import numpy as np
from keras_tuner.src import config as kt_config
from keras_tuner.src.distribute import utils as dist_utils
from keras_tuner.src.engine import hyperparameters as hp_module
from keras_tuner.src.engine import trial as trial_module
from keras_tuner.src.tuners import bayesian as kt_bayesian
from keras_tuner.src.tuners import hyperband as kt_hyperband

from study import runtime, storage
from study.config import SearchConfig
from study.parallel_search import TRIALS_AT_ONCE
from study.results import HISTORY_FILE
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


class _EpochClock(keras.callbacks.Callback):
    """Each epoch's wall time, and how much of it was one-off warm-up.

    The first training and the first validation batch of a fit trace their functions: their excess
    over the second batch is warm-up. That splits a trial's cost into a fixed part and a cost per
    epoch from the first trial on, even when every trial so far ran 1 epoch (Hyperband).
    """

    def __init__(self):
        super().__init__()
        self.epoch_seconds: list[float] = []
        self._first_batches: dict[str, list[float]] = {"train": [], "test": []}
        self._started = {}

    def __deepcopy__(self, memo):
        return self  # Keras Tuner deep-copies callbacks for each execution: keep the one that is read

    @property
    def warmup_seconds(self) -> float:
        return sum(d[0] - min(d[1:], default=0.0) for d in self._first_batches.values() if d)

    def on_epoch_begin(self, epoch, logs=None):
        self._started["epoch"] = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._started["epoch"])

    def _begin(self, kind):
        if len(self._first_batches[kind]) < 2:
            self._started[kind] = time.perf_counter()

    def _end(self, kind):
        if len(self._first_batches[kind]) < 2:
            self._first_batches[kind].append(time.perf_counter() - self._started[kind])

    def on_train_batch_begin(self, batch, logs=None):
        self._begin("train")

    def on_train_batch_end(self, batch, logs=None):
        self._end("train")

    def on_test_batch_begin(self, batch, logs=None):
        self._begin("test")

    def on_test_batch_end(self, batch, logs=None):
        self._end("test")


class _StudyTuner(keras_tuner.Tuner):
    """A Keras Tuner tuner that saves histories and timings and prints a line per trial."""

    def __init__(self, oracle, hypermodel, *, log=print, **kwargs):
        # Straight to Tuner.__init__: Keras Tuner's own subclasses would build their own oracle.
        keras_tuner.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)
        self._log = log
        self._started: dict[str, float] = {}
        self._started_at: dict[str, float] = {}  # wall clock, for the record
        self._initial_epochs: dict[str, int] = {}  # the epoch a Hyperband round's fit started at
        self._environment = runtime.environment()
        self._histories: dict[str, dict] = {}

    def save(self):
        if not self._is_worker():
            self.oracle.save()
        storage.write_json(self._get_tuner_fname(), self.get_state())

    def reload(self):
        if dist_utils.has_chief_oracle() and not dist_utils.is_chief_oracle():
            # A worker started once the project exists: the chief holds the oracle's state and writes its files.
            # Reloading them here would read (and, on a reload, rewrite) what the chief is writing; the worker
            # needs only the space, as in a new project.
            self._populate_initial_space()
            return
        super().reload()

    def _get_tuner_fname(self):
        # Keras Tuner reloads a project when this process's <tuner id>.json exists: a chief's chief.json
        # would be missing in a project searched so far in one process (and tuner0.json where only other
        # workers ran), and the search would start over on top of it. Its content is empty ({}): one name
        # for every process, so a project resumes whether one process, --parallel K or --role started it.
        return str(Path(self.project_dir) / "tuner0.json")

    def search(self, *fit_args, **fit_kwargs):
        if dist_utils.is_chief_oracle():  # Keras Tuner's chief, ending within a second of its last worker
            self.save()
            _serve(self.oracle)
            return
        super().search(*fit_args, **fit_kwargs)

    def pre_create_trial(self):
        # Keras Tuner asks again at once when the oracle answers IDLE (a grid whose last points
        # are running on other workers): wait a little between such requests.
        self._idle_requests = getattr(self, "_idle_requests", 0) + 1
        if self._idle_requests > 1:
            time.sleep(min(2.0, 0.1 * self._idle_requests))

    def on_trial_begin(self, trial):
        self._idle_requests = 0
        super().on_trial_begin(trial)
        # tuner0.json is what makes Keras Tuner reload a project: write it as soon as a trial exists.
        self.save()
        self._started[trial.trial_id] = time.monotonic()
        self._started_at[trial.trial_id] = time.time()
        values = ", ".join(f"{k}={v}" for k, v in trial.hyperparameters.values.items())
        self._log(f"trial {trial.trial_id} started: {values}")

    def run_trial(self, trial, *args, **kwargs):
        for callback in kwargs.get("callbacks", []):
            if isinstance(callback, keras.callbacks.TensorBoard):
                # A trial always runs from scratch, a resumed one too: drop what an attempt that died wrote.
                logs = self._get_tensorboard_dir(callback.log_dir, self._tensorboard_name(trial), 0)
                shutil.rmtree(Path(logs).parent, ignore_errors=True)
        clock = _EpochClock()
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), clock]
        histories = super().run_trial(trial, *args, **kwargs)
        self._histories[trial.trial_id] = {
            "history": {k: [float(v) for v in vals] for k, vals in histories[-1].history.items()},
            "initial_epoch": self._initial_epochs.pop(trial.trial_id, 0),
            "epoch_seconds": clock.epoch_seconds, "warmup_seconds": clock.warmup_seconds,
        }
        return histories

    def _configure_tensorboard_dir(self, callbacks, trial, execution=0):
        # Keras Tuner's own: a TensorBoard callback logs into <log_dir>/<trial_id>/execution<n>, with the
        # hyperparameters for the HParams view grouped under the trial id. Named <project>/<trial_id>
        # here, so that searches logging into one folder stay apart there (trial 0 of each would merge).
        named = copy.copy(trial)
        named.trial_id = self._tensorboard_name(trial)
        super()._configure_tensorboard_dir(callbacks, named, execution)

    def _tensorboard_name(self, trial) -> str:
        return f"{self.project_name}/{trial.trial_id}"

    def on_trial_end(self, trial):
        seconds = time.monotonic() - self._started.pop(trial.trial_id, time.monotonic())
        record = self._histories.pop(trial.trial_id, {"history": {}})
        storage.write_json(
            Path(self.get_trial_dir(trial.trial_id)) / HISTORY_FILE,
            {"seconds": seconds, "epochs": len(record["history"].get("loss", [])), "tuner_id": self.tuner_id,
             "started_at": self._started_at.pop(trial.trial_id, None), "ended_at": time.time(),
             "environment": self._environment, **record},
        )
        super().on_trial_end(trial)
        self._log(self._progress_line(self.oracle.get_trial(trial.trial_id), seconds))

    def _progress_line(self, trial, seconds: float) -> str:
        values = " ".join(f"{k}={v}" for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/"))
        if trial.status == Status.COMPLETED:
            outcome = f"val_accuracy {trial.score:.4f}"
        else:
            reason = (trial.message or "").strip().splitlines()
            outcome = f"{trial.status}: {reason[-1] if reason else 'no reason given'}"
        line = f"trial {trial.trial_id} ({values}): {outcome} in {_duration(seconds)}"
        best = self.oracle.get_best_trials(1)
        if best and best[0].status == Status.COMPLETED:
            line += f"; best {best[0].score:.4f} (trial {best[0].trial_id})"
        return line + self._time_left()

    def planned(self) -> tuple[int, int] | None:
        """(trials, epochs) the whole search is set to spend, for the progress estimate."""
        trials, epochs = self._planned_trials(), getattr(self.hypermodel, "epochs", None)
        if not trials or not epochs:  # an unbounded search, or a HyperModel that does not say
            return None
        return trials, trials * epochs

    def _planned_trials(self) -> int | None:
        return self._oracle_itself.max_trials

    @property
    def _oracle_itself(self):
        """The oracle; on a worker, the copy behind Keras Tuner's OracleClient (the chief's settings and space)."""
        return getattr(self.oracle, "_oracle", self.oracle)

    def _finished_trials(self) -> list | None:
        """The trials that ended: the oracle's; on a worker, read from the trial files the chief writes into the
        project folder (a --parallel search shares it); None where the worker cannot see them."""
        if not self._is_worker():
            trials = list(self.oracle.trials.values())
        else:
            trials = [trial_module.Trial.load(str(p)) for p in Path(self.project_dir).glob("trial_*/trial.json")]
            if not trials:
                return None
        return [t for t in trials if t.status in (Status.COMPLETED, Status.FAILED)]

    def _epoch_budget(self, trial) -> int:
        values = trial.hyperparameters.values
        if "tuner/epochs" in values:  # Hyperband: this round's epochs, on top of the previous round's
            return values["tuner/epochs"] - values.get("tuner/initial_epoch", 0)
        return self.hypermodel.epochs

    def _time_left(self) -> str:
        """Time left from the finished trials' cost model: seconds = a + b x epochs run.

        `a` is a trial's fixed cost (building, tracing, the first epoch's warm-up), which dominates
        Hyperband's 1-epoch trials; `b` a trained epoch's. The epochs left are the budget left,
        scaled by the share of their budget that trials have used so far (early stopping). With several
        trials at once, each gets its share of that time.
        """
        plan, done = self.planned(), self._finished_trials()
        if not plan or done is None:
            return ""
        planned_trials, planned_epochs = plan
        text = f"; {len(done)}/{planned_trials} done"
        costs, budget = [], 0
        for t in done:
            path = Path(self.get_trial_dir(t.trial_id)) / HISTORY_FILE
            if path.exists():
                record = storage.read_json(path)
                in_epochs = None
                if "epoch_seconds" in record:  # written by _EpochClock (not by versions before it)
                    in_epochs = sum(record["epoch_seconds"]) - record["warmup_seconds"]
                costs.append(TrialCost(record["seconds"], record["epochs"], in_epochs))
                budget += self._epoch_budget(t)
        budget_left = planned_epochs - sum(self._epoch_budget(t) for t in done)
        left = seconds_left(costs, budget, planned_trials - len(done), budget_left)
        if left:  # trials at once share what is left (STUDY_TRIALS_AT_ONCE: set by a --parallel search)
            left /= max(1, int(os.environ.get(TRIALS_AT_ONCE, "1") or 1))
        return text + (f", about {_duration(left)} left" if left else "")


def _serve(oracle) -> None:
    """Keras Tuner's `oracle_chief.start_server`, checking every second whether the workers are all done.

    Keras Tuner's own naps 20 s between checks once the first worker is told to stop: up to 20 s of
    an idle machine at the end of every distributed search (and of every --parallel one).
    """
    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    server.add_insecure_port(f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}")
    server.start()
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            time.sleep(1)
    finally:
        server.stop(grace=None)


class GridSearch(_StudyTuner):
    def __init__(self, hypermodel, *, objective, max_trials=None, seed=None, **kwargs):
        oracle = GridOracle(objective=objective, max_trials=max_trials, seed=seed)
        super().__init__(oracle, hypermodel, **kwargs)

    def _planned_trials(self) -> int:
        oracle = self._oracle_itself
        points = math.prod(len(list(hp.values)) for hp in oracle.get_space().space)
        return min(points, oracle.max_trials or points)


class BayesianOptimization(_StudyTuner):
    def __init__(self, hypermodel, *, objective, max_trials=10, num_initial_points=None, seed=None, **kwargs):
        oracle = BayesianOracle(
            objective=objective, max_trials=max_trials, num_initial_points=num_initial_points, seed=seed
        )
        super().__init__(oracle, hypermodel, **kwargs)


class Hyperband(_StudyTuner, keras_tuner.Hyperband):
    """Keras Tuner's Hyperband (its run_trial and checkpoint loading), on the crash-safe oracle.

    A round continues from the checkpoint of the configuration's previous round. Checkpoints are
    never committed, so a search resumed in a fresh checkout (or on another machine) may find one
    gone: that round then trains from scratch for all its epochs, says so, and records it in its
    history.json (`initial_epoch` 0), rather than failing the trial.
    """

    def __init__(self, hypermodel, *, objective, max_epochs, factor=3, max_trials=None, seed=None, **kwargs):
        oracle = HyperbandOracle(objective=objective, max_epochs=max_epochs, factor=factor, seed=seed)
        oracle.max_trials = max_trials
        super().__init__(oracle, hypermodel, **kwargs)

    def _lost_parent(self, hp) -> str | None:
        """The previous round's trial this round continues from, when its checkpoint is gone."""
        parent = hp.values.get("tuner/trial_id")
        return parent if parent and not Path(self._get_checkpoint_fname(parent)).exists() else None

    def _build_hypermodel(self, hp):
        if self._lost_parent(hp):
            return keras_tuner.Tuner._build_hypermodel(self, hp)  # Hyperband's would load the lost weights
        return super()._build_hypermodel(hp)

    def _build_and_fit_model(self, trial, *args, **kwargs):
        lost = self._lost_parent(trial.hyperparameters)
        if lost:
            self._log(f"trial {trial.trial_id}: the checkpoint of trial {lost} is gone; this round trains "
                      f"from scratch for all {kwargs.get('epochs')} epochs")
            kwargs["initial_epoch"] = 0
        self._initial_epochs[trial.trial_id] = kwargs.get("initial_epoch", 0)
        return super()._build_and_fit_model(trial, *args, **kwargs)

    def planned(self) -> tuple[int, int]:
        # Keras Tuner's own bracket arithmetic: round r of bracket b has _get_size(b, r) trials,
        # each training from the previous round's epochs up to _get_epochs(b, r).
        oracle, trials, epochs = self._oracle_itself, 0, 0
        for b in range(oracle._get_num_brackets()):
            for r in range(oracle._get_num_rounds(b)):
                size = oracle._get_size(b, r)
                trials += size
                epochs += size * (oracle._get_epochs(b, r) - (oracle._get_epochs(b, r - 1) if r else 0))
        if oracle.max_trials:
            epochs = epochs * min(1.0, oracle.max_trials / trials)
            trials = min(trials, oracle.max_trials)
        return trials, round(epochs)


TUNERS = {"grid": GridSearch, "bayesian": BayesianOptimization, "hyperband": Hyperband}


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras's TensorBoard callback logging per-epoch scalars only; Keras Tuner adds each trial's hyperparameters.

    Passed to `tuner.search(callbacks=[...])`, Keras Tuner gives every trial its own
    `<log_dir>/<project>/<trial_id>/execution0` and adds TensorBoard's HParams callback there (it
    recognises the callback by its class name, hence this one's). No graph, histograms, images,
    profiler or per-batch scalars: the scalars of an epoch cost a few milliseconds (README).
    """

    def __init__(self, log_dir: str | Path):
        super().__init__(
            log_dir=str(log_dir), histogram_freq=0, write_graph=False, write_images=False,
            write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
        )

    def on_train_batch_end(self, batch, logs=None):
        # Keras calls tf.summary.scalar for every batch's metrics even with update_freq="epoch", when
        # no writer is set for them: they write nothing but cost 0.5 ms each, 1 ms a batch (README).
        pass


def build_tuner(cfg: SearchConfig, hypermodel: keras_tuner.HyperModel, *, log=print) -> _StudyTuner:
    """The tuner for `cfg.tuner`, on `cfg`'s project, quiet except for the study's own line per trial.

    It never overwrites (study.search deletes a project itself when asked) and reloads a project
    it finds. Bayesian optimisation samples a third of its trials at random before the Gaussian
    process takes over (Keras Tuner's default would make a 15-trial search all random).
    """
    common = dict(
        objective="val_accuracy", directory=cfg.directory, project_name=cfg.name, overwrite=False,
        seed=cfg.seed + 1,  # Keras Tuner treats seed=0 as "no seed"
        log=log,
    )
    if cfg.tuner == "grid":
        tuner = GridSearch(hypermodel, max_trials=cfg.max_trials, **common)
    elif cfg.tuner == "bayesian":
        initial = cfg.initial_points or max(2, cfg.max_trials // 3)
        tuner = BayesianOptimization(hypermodel, max_trials=cfg.max_trials, num_initial_points=initial, **common)
    else:
        tuner = Hyperband(hypermodel, max_epochs=cfg.epochs, factor=3, max_trials=cfg.max_trials, **common)
    tuner.oracle.verbose = 0  # one line per trial comes from _StudyTuner instead
    kt_config.DEBUG = False  # a failed trial's traceback goes to trial.json, not the screen
    return tuner


class TrialCost(NamedTuple):
    """A finished trial's wall time, epochs trained, and seconds of those epochs net of warm-up."""

    seconds: float
    epochs: int
    in_epochs: float | None = None


def seconds_left(costs: list[TrialCost], budget_used: int, trials_left: int, budget_left: int) -> float | None:
    """Time left as a x trials left + b x epochs left, where a trial costs a + b x its epochs.

    b is measured inside the trials (epoch time net of warm-up), a is the rest of a trial's time;
    without those timings, a and b come from a line fitted through (epochs, seconds). The epochs
    left are the epoch budget left, scaled by the share of their budget that the finished trials
    actually trained (early stopping). None when nothing is known or left.
    """
    epochs = [c.epochs for c in costs]
    if trials_left <= 0 or not costs or not sum(epochs):
        return None
    if all(c.in_epochs is not None for c in costs):
        b = max(0.0, sum(c.in_epochs for c in costs)) / sum(epochs)
        a = sum(max(0.0, c.seconds - c.in_epochs) for c in costs) / len(costs)
    else:
        seconds = [c.seconds for c in costs]
        a, b = 0.0, sum(seconds) / sum(epochs)
        if len(set(epochs)) > 1:
            b, a = np.polyfit(epochs, seconds, 1)
            if a < 0 or b <= 0:  # noise: fall back to a mean cost per epoch
                a, b = 0.0, sum(seconds) / sum(epochs)
    epochs_left = max(0.0, budget_left * sum(epochs) / max(budget_used, 1))
    return float(trials_left * a + epochs_left * b)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"
