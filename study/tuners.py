"""Keras Tuner's tuners, with what a study needs on top: histories, timings and one progress line per trial.

Searching, storing and resuming are Keras Tuner's own, on the crash-safe oracles of `study.oracles`;
the tuners add each trial's per-epoch history and wall time in `trial_<id>/history.json` (Keras Tuner
keeps neither), a progress line per trial with the time left (`study.progress`), a chief that ends with
its last worker, and Hyperband rounds that survive a lost checkpoint.
"""
from __future__ import annotations

import concurrent.futures
import copy
import math
import os
import shutil
import time
from pathlib import Path

import keras
import keras_tuner
from keras_tuner.src import config as kt_config
from keras_tuner.src.distribute import utils as dist_utils
from keras_tuner.src.engine import trial as trial_module

from study import progress, runtime, storage
from study.config import SearchConfig
from study.oracles import BayesianOracle, GridOracle, HyperbandOracle
from study.parallel_search import TRIALS_AT_ONCE
from study.results import HISTORY_FILE

Status = trial_module.TrialStatus


class EpochClock(keras.callbacks.Callback):
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
        clock = EpochClock()
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
        line = f"trial {trial.trial_id} ({values}): {outcome} in {progress.duration(seconds)}"
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
                costs.append(progress.TrialCost(record["seconds"], record["epochs"], in_epochs))
                budget += self._epoch_budget(t)
        budget_left = planned_epochs - sum(self._epoch_budget(t) for t in done)
        left = progress.seconds_left(costs, budget, planned_trials - len(done), budget_left)
        if left:  # trials at once share what is left (STUDY_TRIALS_AT_ONCE: set by a --parallel search)
            left /= max(1, int(os.environ.get(TRIALS_AT_ONCE, "1") or 1))
        return text + (f", about {progress.duration(left)} left" if left else "")


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


