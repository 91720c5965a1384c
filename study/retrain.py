"""Retraining: train one configuration with one seed, test it once, and the jobs that run retrainings anywhere.

A job is one or more runs trained on one machine: a race's (configuration, seed), or a confirmation's pair
(the baseline and the challenger at one seed, so that a claim's pair never mixes machines). Wherever a job
runs (in this process, in a worker process, on a cluster's worker) it returns each run's record and weights
to the command, whose process alone writes the report folder.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from study import runtime
from study.config import ReportConfig, StudyError
from study.records import Run, RunStore, machine_kind

if TYPE_CHECKING:
    from study.model import ModelFunction


def initial_model(input_shape: tuple[int, ...], num_classes: int, hyperparameters: dict[str, Any], seed: int,
                  model: ModelFunction | None = None):
    """The model before training: the same seed gives the same initial weights whatever the optimizer or the
    dropout rates, for layers of the same names and shapes (study.seeding)."""
    from study.model import NOTEBOOK_CNN, build_model

    return build_model(input_shape, num_classes, hyperparameters, model or NOTEBOOK_CNN, seed=seed)


def retrain(data, hyperparameters: dict[str, Any], seed: int, cfg: ReportConfig, *, model: ModelFunction | None = None,
            weights: Path | None = None, verbose: int | str = 2) -> Run:
    """Train on the training split (validating on the validation split), then evaluate once on the test set.

    The trained weights go to `weights` (for the model files the report exports).
    """
    import keras

    from study.recipe import recipe
    from study.training import fit, predict_proba

    keras.backend.clear_session()  # the previous model's graphs (and layer names), as Keras Tuner does between trials
    trained = initial_model(data.input_shape, data.num_classes, hyperparameters, seed, model)
    digest = hashlib.sha1(b"".join(np.ascontiguousarray(w).tobytes() for w in trained.get_weights())).hexdigest()
    start = time.monotonic()
    how = recipe(hyperparameters, cfg.batch_size)  # the configuration's own batch size, augmentation, schedule
    history = fit(trained, data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                  epochs=cfg.epochs, batch_size=how.batch_size, seed=seed, verbose=verbose,
                  augmentation=how.augmentation, schedule=how.schedule)
    seconds = time.monotonic() - start
    if weights is not None:
        save_weights(trained, weights)
    proba = predict_proba(trained, data.x_test)
    y_pred = proba.argmax(axis=1)
    picked = np.clip(proba[np.arange(len(proba)), data.y_test], 1e-7, 1.0)  # Keras clips the same way
    return Run(
        hyperparameters=dict(hyperparameters), seed=seed,
        history={k: [float(v) for v in vals] for k, vals in history.history.items()}, seconds=seconds,
        test_accuracy=float(np.mean(y_pred == data.y_test)), test_loss=float(-np.mean(np.log(picked))),
        y_pred=y_pred, initial_weights=digest, settings=cfg.settings(cfg.backend),
        environment=runtime.environment(), ended_at=time.time(),
    )


def save_weights(model, path: Path) -> None:
    """Atomically, like every saved file: a crash leaves the old weights or the new ones."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.weights.h5")
    model.save_weights(tmp)
    os.replace(tmp, path)


# --- jobs -------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Job:
    """Runs trained together on one machine. `kept`: per run, the machine kind of a saved copy that the job
    keeps where it runs on that kind (a confirmation pair's half already saved); None: train it."""

    runs: tuple[tuple[dict[str, Any], int], ...]
    label: str = ""  # what the progress line calls it ("confirmation pair")
    kept: tuple[str | None, ...] = ()

    def kept_kind(self, i: int) -> str | None:
        return self.kept[i] if i < len(self.kept) else None


@dataclasses.dataclass
class Trained:
    """A run a job trained, with its weights file's bytes (None: no weights written)."""

    run: Run
    weights: bytes | None


def run_job(job: Job, data, cfg: ReportConfig, model: ModelFunction | None, verbose: int | str = 2) -> list[Trained]:
    """Train the job's runs here, except the saved ones of this machine's kind; each with its weights' bytes."""
    if cfg.threads:
        runtime.set_tensorflow_threads(cfg.threads)
    here = None
    out = []
    for i, (hp, seed) in enumerate(job.runs):
        if job.kept_kind(i) is not None:
            here = here or machine_kind(runtime.environment())
            if job.kept_kind(i) == here:
                continue
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "run.weights.h5"
            run = retrain(data, hp, seed, cfg, model=model, weights=path, verbose=verbose)
            out.append(Trained(run, path.read_bytes() if path.exists() else None))
    return out


def keep(store: RunStore, trained: Trained) -> Path:
    """Save a job's run in the report folder, its weights first; a saved copy from another machine is set aside."""
    run = trained.run
    if store.path(run.hyperparameters, run.seed).exists():
        store.set_aside(run.hyperparameters, run.seed)
    if trained.weights is not None:
        weights = store.weights_path(run.hyperparameters, run.seed)
        weights.parent.mkdir(parents=True, exist_ok=True)
        tmp = weights.with_name(f".{weights.stem}.tmp.weights.h5")
        tmp.write_bytes(trained.weights)
        os.replace(tmp, weights)
    return store.save(run)


_WORKER: dict[str, Any] = {}  # what a worker process of the side-by-side retrainings holds


def pickled_model(model: ModelFunction | None) -> bytes | None:
    """The model function as a worker process receives it: by value (cloudpickle, as Dask sends functions), so a
    function defined in a notebook reaches it too; StudyError in one line where it cannot be sent."""
    if model is None or model.spec is None:
        return None
    import cloudpickle

    try:
        return cloudpickle.dumps(model)
    except Exception as e:  # the user's closure: whatever it holds that cannot travel
        raise StudyError(f"model {model.spec} cannot be sent to worker processes ({type(e).__name__}: {e}); define "
                         "it in a .py file, or train one at a time (parallel=1)") from None


def start_worker(cfg: ReportConfig, model: bytes | None, held=None) -> None:
    """A side-by-side worker: it decodes the images itself (the command trains nothing) and unpickles the model."""
    import cloudpickle

    from study import arrays
    from study.data import load_dataset

    if held is not None:
        arrays.hold(cfg.data.data_dir, held)
    _WORKER.update(data=load_dataset(cfg.data, keep_test="encoded"), cfg=cfg,
                   model=cloudpickle.loads(model) if model is not None else None)


def job_in_worker(job: Job) -> list[Trained]:
    """A job, as `run_jobs` runs it in its own process; the command saves what it returns."""
    return run_job(job, _WORKER["data"], _WORKER["cfg"], _WORKER["model"], verbose=0)


def final_fit(data, store: RunStore, hyperparameters: dict[str, Any], cfg: ReportConfig, model: ModelFunction,
              log=print, verbose: int | str = 2) -> None:
    """The recommended configuration trained once on the training and validation images together.

    For the report's epochs and first seed, with nothing held out: its test accuracy is not measured
    (the report's numbers come from the runs trained on the training split). Saved as weights beside
    the runs, so a rerun does not train it again.
    """
    from study.recipe import recipe
    from study.training import Joined, fit

    path = store.final_weights_path(hyperparameters, cfg.seed)
    if path.exists():
        log(f"final fit: already saved in {path}")
        return
    log(f"final fit: the recommended configuration on {len(data.y_train) + len(data.y_val)} training and "
        f"validation images, {cfg.epochs} epochs, seed {cfg.seed}")
    trained = initial_model(data.input_shape, data.num_classes, hyperparameters, cfg.seed, model)
    # The two splits seen as one array, not copied: 0.15 GB of CIFAR-10 not duplicated.
    x, y = Joined(data.x_train, data.x_val), np.concatenate([data.y_train, data.y_val])
    how = recipe(hyperparameters, cfg.batch_size)
    fit(trained, x, y, epochs=cfg.epochs, batch_size=how.batch_size, seed=cfg.seed, verbose=verbose,
        augmentation=how.augmentation, schedule=how.schedule)
    save_weights(trained, path)
