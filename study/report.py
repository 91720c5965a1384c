"""`python -m study.report`: retrain the baseline and each search's best configuration, evaluate once on the test set.

Writes `<output>/report.md` with its figures (PNG), tables (CSV), `metrics.json` and `config.json`.
The test set is read here and nowhere else. Every retraining is saved in `<output>/runs/` as soon
as it ends, so a rerun trains only what is missing; the rendered report is built in a temporary
folder and swapped in whole, so a crash never leaves half a report.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import warnings as pywarnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from study import devices, locks, parallel, racing, results, runtime, stats
from study.config import BASELINE, OPTIMIZER_COMPARISON, DataConfig, ReportConfig, StudyError, model_identity
from study.records import MODELS_FOLDER, RUNS_FOLDER, Run, RunStore, Search, find_searches
from study.search import Parser, add_data_arguments

if TYPE_CHECKING:
    from study.model import ModelFunction

PROG = "python -m study.report"
DEFAULT_DIRECTORY = "tuner_results"
_DATA_FLAGS = ("data_dir", "subset", "image_size", "channels", "split_seed")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--directory", help=f"where the searches are, one project folder each (default: "
                   f"{DEFAULT_DIRECTORY}; when that folder is absent or holds no search, the report compares the "
                   "baseline with SGD and RMSprop only)")
    p.add_argument("--output", default="reports",
                   help="report folder; its runs/ subfolder keeps every retraining for reruns (default: reports)")
    p.add_argument("--epochs", type=int, default=BASELINE.epochs,
                   help=f"epochs of every retraining (default: {BASELINE.epochs}, the notebook's)")
    p.add_argument("--seeds", type=int, default=ReportConfig.seeds, metavar="K",
                   help="retrain every configuration with K seeds and compare them in pairs "
                   f"(default: {ReportConfig.seeds}; 1: a quick look, Wilson interval and McNemar's test)")
    p.add_argument("--min-seeds", type=int, default=ReportConfig.min_seeds, metavar="M",
                   help="racing: from M seeds on, an arm worse on validation than the best arm racing, beyond the "
                   "noise, or that cannot beat the baseline beyond the noise even with K seeds, gets no more seeds "
                   f"(default: {ReportConfig.min_seeds}; M = K: every arm gets K seeds)")
    p.add_argument("--candidates", type=int, metavar="N", help="race the N best distinct configurations of all "
                   "the searches together, by their search validation accuracy (default: each search's best)")
    p.add_argument("--seed", type=int, help="first seed (default: the first search's --seed, else 1)")
    p.add_argument("--batch-size", type=int, default=BASELINE.batch_size, help=f"default: {BASELINE.batch_size}")
    p.add_argument("--full-data", action="store_true", help="retrain on every image even if the searches used "
                   "--subset (search cheaply, report at full budget)")
    p.add_argument("--model", metavar="MODULE:FUNCTION", help="the model function the searches studied "
                   "(default: the one recorded by the searches, else the notebook's CNN)")
    p.add_argument("--parallel", type=int, metavar="K", help="retrain K configurations or seeds side by side, in K "
                   f"processes (default: {devices.GPU_SIDE_BY_SIDE} on a GPU, 1 on a CPU; the same numbers either way)")
    p.add_argument("--overwrite", action="store_true", help="delete the report in --output and its saved runs, and "
                   "start over (without it, a report of other searches, data or training settings is refused)")
    p.add_argument("--final-fit", action="store_true", help="also train the recommended configuration once on the "
                   "training and validation images together, saved as <output>/models/final.keras")
    add_data_arguments(p, searched="the data recorded in the config.json of the first search under --directory, "
                       "project folders in alphabetical order (all of a report's searches normally share it); "
                       "without searches, the search's defaults (CIFAR-10 via keras.datasets, 32x32, 3 channels, "
                       f"split seed {BASELINE.split_seed})")
    # None marks "not given": without data flags the searches' own data configuration is used.
    p.set_defaults(image_size=None, channels=None, split_seed=None)
    return p


def load_searches(directory: str | None) -> list[Search]:
    """The searches to report on; a --directory given explicitly must exist (a typo must not cost an hour)."""
    if directory is not None and not Path(directory).exists():
        raise StudyError(f"--directory {directory} does not exist")
    return find_searches(Path(directory or DEFAULT_DIRECTORY))


def resolve_config(args: argparse.Namespace, searches: list[Search]) -> tuple[ReportConfig, list[str]]:
    """The report's configuration and warnings (searches run on different data)."""
    for name in ("epochs", "seeds", "batch_size", "subset", "parallel", "candidates"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise StudyError(f"--{name.replace('_', '-')} must be > 0, got {value}")
    if args.min_seeds < 2:
        raise StudyError(f"--min-seeds must be >= 2 (a paired comparison needs two seeds), got {args.min_seeds}")
    if args.seed is not None and args.seed < 0:
        raise StudyError(f"--seed must be >= 0, got {args.seed}")
    warnings = []
    distinct = {json.dumps(dataclasses.asdict(s.config.data), sort_keys=True): s.name for s in searches}
    if len(distinct) > 1:
        warnings.append(
            f"the searches used different data ({', '.join(s.name for s in searches)}): their validation "
            "accuracies are not comparable with each other; the retrainings below all use the same data"
        )
    data, data_from = _data_config(args, searches)
    seed = args.seed if args.seed is not None else (searches[0].config.seed if searches else 1)
    model = model_identity(args.model) if args.model else (searches[0].config.model if searches else None)
    for s in searches:
        if s.config.model != model:
            raise StudyError(f"search {s.name} studied {_model_name(s.config.model)}, the report "
                             f"{_model_name(model)}: report on searches of one model (--directory, --model)")
    cfg = ReportConfig(
        directory=args.directory or DEFAULT_DIRECTORY, output=args.output, epochs=args.epochs, seeds=args.seeds,
        model=model, seed=seed, batch_size=args.batch_size, data=data, data_from=data_from,
        final_fit=args.final_fit, backend=runtime.keras_backend(), parallel=args.parallel,
        candidates=args.candidates, min_seeds=args.min_seeds,
        searches={s.name: s.config.identity() for s in searches},
    )
    elsewhere = sorted({s.name for s in searches if s.config.backend != cfg.backend})
    if elsewhere:
        warnings.append(f"{', '.join(elsewhere)} searched on another Keras backend than this report's {cfg.backend}: "
                        "their validation accuracies and the retrainings below are computed differently")
    return cfg, warnings


def _model_name(identity: dict[str, str] | None) -> str:
    return "the notebook's CNN" if identity is None else f"--model {identity['spec']}"


def _data_config(args: argparse.Namespace, searches: list[Search]) -> tuple[DataConfig, str]:
    """The searches' data, changed field by field by the flags given.

    E.g. --full-data retrains the winners of a search run on a --subset on every image (search
    cheaply, report at full budget).
    """
    changes = {f: getattr(args, f) for f in _DATA_FLAGS if getattr(args, f) is not None}
    if args.full_data:
        if "subset" in changes:
            raise StudyError("--full-data and --subset contradict each other")
        changes["subset"] = None
    if "image_size" in changes:
        changes["image_size"] = tuple(changes["image_size"])
    if searches:
        data, data_from = searches[0].config.data, f"search {searches[0].name}"
    else:
        data, data_from = DataConfig(), "default"
    if changes:
        data = dataclasses.replace(data, **changes)
        flags = [_flag(f, args.full_data) for f in changes]
        data_from = f"{data_from}, changed by {', '.join(flags)}" if searches else "flags"
    return data, data_from


def _flag(field: str, full_data: bool) -> str:
    return "--full-data" if field == "subset" and full_data else f"--{field.replace('_', '-')}"


def check_output(cfg: ReportConfig, overwrite: bool = False, log=print) -> None:
    """Refuse, before any image is decoded, an output that cannot be written, that holds something else than a
    report, or that holds a report of other searches, data or training settings (--overwrite deletes it)."""
    output = Path(cfg.output)
    if output.exists():
        if not output.is_dir():
            raise StudyError(f"--output {output} exists and is not a directory")
        others = {p.name for p in output.iterdir()} - {"README.md", RUNS_FOLDER, MODELS_FOLDER}
        if others and not (output / "report.md").exists():
            raise StudyError(f"--output {output} holds files that are not a report; choose another --output")
        changed = _changed(cfg, output)
        if overwrite:
            log(f"--overwrite: deleting the report and the saved runs in {output}")
            for p in output.iterdir():
                if p.name != "README.md":  # a repository's note about the folder stays
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
        elif changed:
            raise StudyError(f"{output} holds a report of other {', '.join(changed)}; pass --overwrite to start over "
                             "or --output NEW to keep both")
    ancestor = output.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise StudyError(f"cannot write --output {output}: {ancestor} is not a writable directory")


def _changed(cfg: ReportConfig, output: Path) -> list[str]:
    """What the report in `output` was made from that differs from `cfg` ([] when there is none)."""
    saved = output / "config.json"
    if not saved.exists():
        return []
    try:
        old = json.loads(saved.read_text())
    except (OSError, ValueError) as e:
        raise StudyError(f"{saved} is unreadable ({e}); pass --overwrite to start over or --output NEW") from None
    return [name.replace("_", " ") for name in cfg.differences(old)]


# --- what to train ---------------------------------------------------------------------------------

def plan(searches: list[Search], baseline: dict[str, Any], batch_size: int = BASELINE.batch_size,
         candidates: int | None = None) -> dict[str, dict[str, Any]]:
    """{arm name: hyperparameters}: the baseline (Adam), SGD, RMSprop and each search's best trial.

    Training hyperparameters at the value a configuration naming none trains with (the notebook's, the
    report's batch size) are left out (study.recipe.canonical): the same configuration is one arm's runs.
    Searches whose bests are the same configuration share one arm, named after all of them ("grid best =
    bayesian best"); a search's best that is the baseline's configuration stays an arm of its own, shown as such.
    `candidates`: the N best distinct configurations of all the searches instead (study.racing.candidates).
    """
    from study.recipe import canonical

    baseline = canonical(baseline, batch_size)
    arms = {"baseline": baseline}
    for optimizer, lr in OPTIMIZER_COMPARISON.items():
        if optimizer != BASELINE.optimizer:
            arms[optimizer] = {**baseline, "optimizer": optimizer, "learning_rate": lr}
    if candidates is not None:
        return {**arms, **racing.candidates(searches, candidates, list(arms.values()), batch_size)}
    named: dict[str, tuple[list[str], dict[str, Any]]] = {}  # one arm per distinct configuration
    for s in searches:
        if s.best is not None:
            hp = canonical(results.trial_hyperparameters(s.best, s.trials), batch_size)
            named.setdefault(json.dumps(hp, sort_keys=True), ([], hp))[0].append(f"{s.name} best")
    arms.update({" = ".join(names): hp for names, hp in named.values()})
    return arms


def jobs(arms: dict[str, dict[str, Any]], cfg: ReportConfig) -> list[tuple[dict[str, Any], int]]:
    """Every distinct (hyperparameters, seed), in arm order then seed: a configuration shared by two arms once."""
    out, seen = [], set()
    for hp in arms.values():
        for seed in range(cfg.seed, cfg.seed + cfg.seeds):
            key = json.dumps([hp, seed], sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append((hp, seed))
    return out


def race(store: RunStore, arms: dict[str, dict[str, Any]], cfg: ReportConfig, n_test: int | None = None) -> racing.Race:
    """Where the race stands, replayed from the saved runs (study.racing): the same decisions after any crash."""
    seeds = range(cfg.seed, cfg.seed + cfg.seeds)
    return racing.race(arms, lambda hp, seed: store.load(hp, seed, n_test), seeds, cfg.min_seeds)


def raced_runs(store: RunStore, arms: dict[str, dict[str, Any]], state: racing.Race) -> dict[str, list[Run]]:
    """Each arm's saved run of every seed it ran in the race, in seed order."""
    return {name: [store.load(arms[name], s) for s in state.arms[name].seeds] for name in arms}


# --- training --------------------------------------------------------------------------------------

def initial_model(input_shape: tuple[int, ...], num_classes: int, hyperparameters: dict[str, Any], seed: int,
                  model: ModelFunction | None = None):
    """The model before training: the same seed gives the same initial weights whatever the optimizer."""
    import keras

    from study.model import NOTEBOOK_CNN, build_model

    keras.utils.set_random_seed(seed)
    return build_model(input_shape, num_classes, hyperparameters, model or NOTEBOOK_CNN)


def retrain(data, hyperparameters: dict[str, Any], seed: int, cfg: ReportConfig, *, model: ModelFunction | None = None,
            weights: Path | None = None, verbose: int | str = 2) -> Run:
    """Train on the training split (validating on the validation split), then evaluate once on the test set.

    The trained weights go to `weights` (for the model files the report exports).
    """
    import keras

    from study.recipe import recipe
    from study.training import fit, predict_proba

    keras.backend.clear_session()  # the previous model's graphs, as Keras Tuner does between trials
    trained = initial_model(data.input_shape, data.num_classes, hyperparameters, seed, model)
    digest = hashlib.sha1(b"".join(np.ascontiguousarray(w).tobytes() for w in trained.get_weights())).hexdigest()
    start = time.monotonic()
    how = recipe(hyperparameters, cfg.batch_size)  # the configuration's own batch size, augmentation, schedule
    history = fit(trained, data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                  epochs=cfg.epochs, batch_size=how.batch_size, seed=seed, verbose=verbose,
                  augmentation=how.augmentation, schedule=how.schedule)
    seconds = time.monotonic() - start
    if weights is not None:
        _save_weights(trained, weights)
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


def _save_weights(model, path: Path) -> None:
    """Atomically, like every saved file: a crash leaves the old weights or the new ones."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.weights.h5")
    model.save_weights(tmp)
    os.replace(tmp, path)


def train_missing(data, store: RunStore, todo: list[tuple[dict[str, Any], int]], cfg: ReportConfig,
                  model: ModelFunction | None = None, log=print, verbose: int | str = 2, ahead: int = 0,
                  live: str = "") -> None:
    """Train every job in `todo` and save each run as soon as it ends; side by side on a GPU (`--parallel`).

    `ahead`: retrainings expected after these (the race's later rounds), counted in the time left;
    `live`: how many arms race ("4 of 6 arms live"), said on every progress line.
    """
    started, n, done = time.monotonic(), len(todo), [0]
    workers = devices.side_by_side(cfg.parallel, n)

    def starting(i: int, job: tuple[dict[str, Any], int]) -> None:
        hp, seed = job
        values = ", ".join(f"{k}={v}" for k, v in hp.items())
        log(f"[{i}/{n}] retraining seed {seed}, {cfg.epochs} epoch{'s' if cfg.epochs > 1 else ''}"
            f"{f', {live}' if live else ''}: {values}")

    def saved(i: int, job: tuple[dict[str, Any], int], result: tuple[str, float, float]) -> None:
        path, accuracy, seconds = result
        done[0] += 1
        # Per job as it ran, `workers` at a time: the first jobs side by side end together, so time per
        # completion would count them k times over.
        left = (time.monotonic() - started) * min(workers, done[0]) / done[0] * (n - done[0] + ahead) / workers
        at_most = f"at most {n - done[0] + ahead} retrainings, " if ahead else ""
        log(f"    {f'[{i}/{n}] ' if workers > 1 else ''}test accuracy {accuracy:.4f} in {seconds:.0f}s, saved as "
            f"{path}" + (f"; about {left / 60:.0f} min left ({at_most}{live})" if left and live else
                         f"; about {left / 60:.0f} min left" if left else ""))

    if workers > 1:
        log(f"retraining {workers} at a time, side by side (--parallel)")
        # Every worker gets the data whole, the test images decoded: an encoded copy cannot be sent.
        shared = dataclasses.replace(data, x_test=np.asarray(data.x_test))
        initializer, task = _side_by_side()
        parallel.run_side_by_side(task, todo, workers, initializer=initializer,
                                  initargs=(shared, cfg, store.folder, store.settings),
                                  started=starting, finished=saved)
        return
    for i, (hp, seed) in enumerate(todo, 1):
        starting(i, (hp, seed))
        run = retrain(data, hp, seed, cfg, model=model, weights=store.weights_path(hp, seed), verbose=verbose)
        saved(i, (hp, seed), (store.save(run), run.test_accuracy, run.seconds))


def _side_by_side():
    """(initializer, task) for the worker processes, named by this module's own name: `study.report` also when
    it runs as `__main__` (python -m), since a spawned worker finds them by that name."""
    from study import report

    return report._start_retraining_worker, report._retrain_in_worker


_WORKER: dict[str, Any] = {}  # what a worker process of the side-by-side retrainings holds


def _start_retraining_worker(data, cfg: ReportConfig, folder: Path, settings: dict[str, Any]) -> None:
    _WORKER.update(data=data, cfg=cfg, store=RunStore(folder, settings),
                   model=_load_model(cfg) if cfg.model is not None else None)


def _retrain_in_worker(hyperparameters: dict[str, Any], seed: int) -> tuple[str, float, float]:
    """One retraining, as `train_missing` does it in its own process; saved here: (path, test accuracy, seconds)."""
    data, cfg, store = _WORKER["data"], _WORKER["cfg"], _WORKER["store"]
    run = retrain(data, hyperparameters, seed, cfg, model=_WORKER["model"],
                  weights=store.weights_path(hyperparameters, seed), verbose=0)
    return str(store.save(run)), run.test_accuracy, run.seconds


def run(cfg: ReportConfig, searches: list[Search], warnings: list[str], log=print, verbose: int | str = 2,
        command: str | None = None) -> Path:
    """Load the data, retrain what is not saved yet, write the report; returns the report folder."""
    from study.data import load_dataset

    # Labels, samples and the test images kept encoded: what planning and rendering need. The training
    # images are decoded only when something is left to train, so rendering alone takes seconds.
    # The notebook's CNN needs no TensorFlow to be planned: rendering alone then imports none. A --model
    # that cannot be imported answers before any image is decoded.
    model = _load_model(cfg) if cfg.model is not None else None
    data = load_dataset(cfg.data, keep_test="encoded", keep_train=False)
    log(data.describe())
    for w in warnings:
        log(f"warning: {w}")
    output = Path(cfg.output)
    store = RunStore(output / RUNS_FOLDER, cfg.settings(cfg.backend))
    arms = plan(searches, _baseline(model, data), cfg.batch_size, cfg.candidates)
    state = race(store, arms, cfg, len(data.y_test))
    _say_what_is_saved(store, jobs(arms, cfg), state, cfg, log)
    if state.todo or cfg.final_fit:
        n_test, data = len(data.y_test), None  # its encoded test images are not held twice while training
        data, model = _train(cfg, store, lambda: race(store, arms, cfg, n_test), arms, model, log, verbose)
        state = race(store, arms, cfg, n_test)
    runs = raced_runs(store, arms, state)
    analysis = stats.analyse(runs, data.y_test, dropped=state.dropped)
    models = models_to_export(runs, analysis, store, cfg)
    invocation = {"command": command}
    _write(output, cfg, data, searches, runs, analysis, warnings, invocation,
           lambda folder: export_models(folder, models, model, data.input_shape, data.num_classes,
                                        previous=output / MODELS_FOLDER))
    log(f"report: {output / 'report.md'}")
    return output


def _train(cfg: ReportConfig, store: RunStore, racer: Callable[[], racing.Race], arms: dict[str, dict[str, Any]],
           model: ModelFunction | None, log, verbose: int | str) -> tuple[Any, ModelFunction]:
    """Load every image, run the race round by round (and the final fit); returns the data without its training
    images. `racer()`: where the race stands now, from the saved runs."""
    from study.data import load_dataset

    # Before any retraining is saved: bad data leaves no trace. The test images stay encoded until each
    # evaluation: 0.03 GB less while training (README, memory). Decoded before TensorFlow is imported,
    # whose allocations then reuse what decoding freed.
    data = load_dataset(cfg.data, keep_test="encoded")
    model = model or _load_model(cfg)
    state = racer()
    while state.todo:
        log(f"round {state.round + 1} of {cfg.seeds} (seed {cfg.seed + state.round}): {state.live_text()}"
            + "".join(f"; {name} dropped after {a.dropped_after} seeds ({a.dropped_because})"
                      for name, a in state.arms.items() if a.dropped_after == state.round))
        train_missing(data, store, state.todo, cfg, model=model, log=log, verbose=verbose,
                      ahead=state.left - len(state.todo), live=state.live_text())
        state = racer()
    if cfg.final_fit:
        runs = raced_runs(store, arms, state)
        hyperparameters = runs[stats.analyse(runs, data.y_test, dropped=state.dropped).recommended][0].hyperparameters
        final_fit(data, store, hyperparameters, cfg, model, log, verbose)
    # The last model's graphs and input pipeline hold the training images: gone with the session. What
    # rendering needs of the data is small: 0.15 GB less at the report's peak on CIFAR-10.
    import keras

    keras.backend.clear_session()
    data = data.without_training_images()
    runtime.release_freed_memory()
    return data, model


def _load_model(cfg: ReportConfig) -> ModelFunction:
    with runtime.without_notebook_modules():  # Keras would import matplotlib and IPython for nothing
        from study import model as model_lib
    return model_lib.load_model_function(cfg.model)


def _baseline(model: ModelFunction | None, data) -> dict[str, Any]:
    if model is None:
        return BASELINE.hyperparameters()
    from study import model as model_lib

    return model_lib.default_hyperparameters(model, data.input_shape, data.num_classes)


def _say_what_is_saved(store: RunStore, all_jobs: list, state: racing.Race, cfg: ReportConfig, log) -> None:
    if cfg.min_seeds < cfg.seeds and state.left:
        log(f"retrainings: {state.saved} already saved in {store.folder}, at most {state.left} to train (racing from "
            f"{cfg.min_seeds} seeds: an arm worse on validation than the best arm racing, or that cannot beat the "
            "baseline beyond the noise, gets no more)")
    else:
        log(f"retrainings: {state.saved} of {state.saved + state.left} already saved in {store.folder}, "
            f"{state.left} to train")
    other = store.other_settings(all_jobs)
    if other:
        what = ", ".join(f"{name} ({n})" for name, n in other.items())
        log(f"{store.folder}: saved runs of these configurations with another {what} are kept but not reused")


def _write(output: Path, cfg: ReportConfig, data, searches, runs, analysis, warnings, invocation: dict[str, Any],
           export: Callable[[Path], list[dict[str, Any]]]) -> None:
    """Export the model files and render into a temporary folder beside `output`, carry the saved runs over,
    and swap it in whole."""
    from study.render import render

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        models = export(tmp / MODELS_FOLDER)
        render(tmp, cfg, data, searches, runs, analysis, warnings, invocation, models)
        if (output / "README.md").exists():  # the repository's reports/README.md stays
            shutil.copy2(output / "README.md", tmp / "README.md")
        if (output / RUNS_FOLDER).exists():
            shutil.copytree(output / RUNS_FOLDER, tmp / RUNS_FOLDER)
        _swap(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --- the answer as model files ----------------------------------------------------------------------

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
    _save_weights(trained, path)


def models_to_export(runs: dict[str, list[Run]], analysis, store: RunStore, cfg: ReportConfig) -> list[dict[str, Any]]:
    """The model files the report can write: each seed of the recommendation and of the baseline, and the final fit.

    Only runs whose weights are on disk (weights are never committed: a report re-rendered from a
    fresh checkout lists none).
    """
    found = []
    for arm in dict.fromkeys([analysis.recommended, "baseline"]):
        for run in runs[arm]:
            weights = store.weights_path(run.hyperparameters, run.seed)
            if weights.exists():
                found.append({"file": f"{arm.replace(' ', '_')}-seed{run.seed}.keras", "arm": arm, "seed": run.seed,
                              "hyperparameters": run.hyperparameters, "test_accuracy": run.test_accuracy,
                              "weights": weights})
    recommended = runs[analysis.recommended][0].hyperparameters
    final = store.final_weights_path(recommended, cfg.seed)
    if cfg.final_fit and final.exists():
        found.append({"file": "final.keras", "arm": f"{analysis.recommended} (final fit)", "seed": cfg.seed,
                      "hyperparameters": recommended, "test_accuracy": None, "weights": final})
    return found


SOURCES = "sources.json"  # in the models folder: the weights file (path, size, time) each model file was made from


def export_models(folder: Path, models: list[dict[str, Any]], model: ModelFunction | None,
                  input_shape: tuple[int, ...], num_classes: int, previous: Path | None = None) -> list[dict[str, Any]]:
    """Write each model as a `.keras` file that takes uint8 images as the data loader gives them.

    The scaling to [0, 1] is the saved model's first layer, dividing by 255 exactly as training did.
    A file that `previous` (the last report's models folder) already made from the same weights is
    copied, not rebuilt: a report that only renders imports no TensorFlow.
    """
    if not models:
        return []
    folder.mkdir(parents=True)
    made = _read_sources(previous)
    sources = {}
    for entry in models:
        sources[entry["file"]] = _source(entry["weights"])
        if made.get(entry["file"]) == sources[entry["file"]]:
            shutil.copy2(previous / entry["file"], folder / entry["file"])
        else:
            _export_model(folder / entry["file"], entry, model, input_shape, num_classes)
    (folder / SOURCES).write_text(json.dumps(sources, indent=1))
    return [{k: v for k, v in e.items() if k != "weights"} for e in models]


def _source(weights: Path) -> dict[str, Any]:
    stat = weights.stat()
    return {"weights": str(weights.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _read_sources(previous: Path | None) -> dict[str, Any]:
    """What the last report's model files were made from; {} when unknown (no file, or unreadable: rebuilt)."""
    try:
        made = json.loads((previous / SOURCES).read_text())
    except (TypeError, OSError, ValueError):
        return {}
    return {name: src for name, src in made.items() if (previous / name).is_file()} if isinstance(made, dict) else {}


def _export_model(path: Path, entry: dict[str, Any], model: ModelFunction | None, input_shape: tuple[int, ...],
                  num_classes: int) -> None:
    import keras

    from study.model import NOTEBOOK_CNN, build_uncompiled

    # Not compiled: the file then loads without study (a label-smoothed loss is study's own class).
    trained = build_uncompiled(input_shape, num_classes, entry["hyperparameters"], model or NOTEBOOK_CNN)
    with pywarnings.catch_warnings():  # the weights' optimizer state: not part of the model file
        pywarnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        trained.load_weights(entry["weights"])
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="images")
    # Normalization with mean 0 and variance 255**2 divides by 255.0, as study.training.Batches does;
    # Rescaling(1/255) would multiply, off by one float32 rounding for some pixels.
    scaled = keras.layers.Normalization(mean=0.0, variance=255.0**2, name="scale_to_0_1")(inputs)
    keras.Model(inputs, trained(scaled), name="study_model").save(path)


def _swap(new: Path, output: Path) -> None:
    old = None
    if output.exists():
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        os.replace(output, old)
    os.replace(new, output)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    runtime.configure()
    runtime.quiet_tensorflow()  # imports nothing: --help and bad input stay fast
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        searches = load_searches(args.directory)
        cfg, warnings = resolve_config(args, searches)
        check_output(cfg, args.overwrite)
        shown = {k: v for k, v in cfg.to_dict().items() if k != "searches"}  # named on the searches line below
        print(f"configuration: {json.dumps(shown)}", flush=True)
        if cfg.data_from.startswith("search"):
            print(f"data: as recorded by {cfg.data_from} (data flags change it)", flush=True)
        print(f"searches: {', '.join(s.name for s in searches) or f'none found in {cfg.directory}'}", flush=True)
        command = shlex.join([*PROG.split(), *argv])
        with locks.hold(Path(cfg.output), command, what="report"):  # one report, one process
            run(cfg, searches, warnings, log=lambda msg: print(msg, flush=True), command=command)
    except StudyError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except KeyboardInterrupt:
        print("\ninterrupted; finished retrainings are saved: rerun the same command to go on", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
