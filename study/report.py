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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from study import runtime
from study.config import BASELINE, OPTIMIZER_COMPARISON, DataConfig, ReportConfig, StudyError
from study.records import RUNS_FOLDER, Run, RunStore, Search, find_searches
from study.search import Parser, add_data_arguments

PROG = "python -m study.report"
DEFAULT_DIRECTORY = "tuner_results"
_DATA_FLAGS = ("data_dir", "subset", "image_size", "channels", "split_seed")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--directory", help=f"where the searches are (default: {DEFAULT_DIRECTORY}; "
                   "without it, the report compares the baseline with SGD and RMSprop only)")
    p.add_argument("--output", default="reports",
                   help="report folder; its runs/ subfolder keeps every retraining for reruns (default: reports)")
    p.add_argument("--epochs", type=int, default=BASELINE.epochs,
                   help=f"epochs of every retraining (default: {BASELINE.epochs}, the notebook's)")
    p.add_argument("--seeds", type=int, default=ReportConfig.seeds, metavar="K",
                   help="retrain every configuration with K seeds and compare them in pairs "
                   f"(default: {ReportConfig.seeds}; 1: a quick look, Wilson interval and McNemar's test)")
    p.add_argument("--seed", type=int, help="first seed (default: the first search's --seed, else 1)")
    p.add_argument("--batch-size", type=int, default=BASELINE.batch_size, help=f"default: {BASELINE.batch_size}")
    p.add_argument("--full-data", action="store_true", help="retrain on every image even if the searches used "
                   "--subset (search cheaply, report at full budget)")
    add_data_arguments(p)
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
    for name in ("epochs", "seeds", "batch_size", "subset"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise StudyError(f"--{name.replace('_', '-')} must be > 0, got {value}")
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
    cfg = ReportConfig(
        directory=args.directory or DEFAULT_DIRECTORY, output=args.output, epochs=args.epochs, seeds=args.seeds,
        seed=seed, batch_size=args.batch_size, data=data, data_from=data_from,
    )
    return cfg, warnings


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


def check_output(output: Path) -> None:
    """Refuse, before any training, an output that cannot be written or that holds something else than a report."""
    if output.exists():
        if not output.is_dir():
            raise StudyError(f"--output {output} exists and is not a directory")
        others = {p.name for p in output.iterdir()} - {"README.md", RUNS_FOLDER}
        if others and not (output / "report.md").exists():
            raise StudyError(f"--output {output} holds files that are not a report; choose another --output")
    ancestor = output.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise StudyError(f"cannot write --output {output}: {ancestor} is not a writable directory")


# --- what to train ---------------------------------------------------------------------------------

def plan(searches: list[Search]) -> dict[str, dict[str, Any]]:
    """{arm name: hyperparameters}: the baseline (Adam), SGD, RMSprop and each search's best trial."""
    arms = {"baseline": BASELINE.hyperparameters()}
    for optimizer, lr in OPTIMIZER_COMPARISON.items():
        if optimizer != BASELINE.optimizer:
            arms[optimizer] = {**BASELINE.hyperparameters(), "optimizer": optimizer, "learning_rate": lr}
    for s in searches:
        if s.best is not None:
            arms[f"{s.name} best"] = {
                k: (str(s.best[k]) if k == "optimizer" else float(s.best[k])) for k in BASELINE.hyperparameters()
            }
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


# --- training --------------------------------------------------------------------------------------

def initial_model(input_shape: tuple[int, ...], num_classes: int, hyperparameters: dict[str, Any], seed: int):
    """The model before training: the same seed gives the same initial weights whatever the optimizer."""
    import keras

    from study.model import build_model

    keras.utils.set_random_seed(seed)
    return build_model(input_shape, num_classes, **hyperparameters)


def retrain(data, hyperparameters: dict[str, Any], seed: int, cfg: ReportConfig, verbose: int | str = 2) -> Run:
    """Train on the training split (validating on the validation split), then evaluate once on the test set."""
    import keras

    from study.model import fit, predict_proba

    keras.backend.clear_session()  # the previous model's graphs, as Keras Tuner does between trials
    model = initial_model(data.input_shape, data.num_classes, hyperparameters, seed)
    digest = hashlib.sha1(b"".join(np.ascontiguousarray(w).tobytes() for w in model.get_weights())).hexdigest()
    start = time.monotonic()
    history = fit(model, data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                  epochs=cfg.epochs, batch_size=cfg.batch_size, seed=seed, verbose=verbose)
    seconds = time.monotonic() - start
    proba = predict_proba(model, data.x_test)
    y_pred = proba.argmax(axis=1)
    picked = np.clip(proba[np.arange(len(proba)), data.y_test], 1e-7, 1.0)  # Keras clips the same way
    return Run(
        hyperparameters=dict(hyperparameters), seed=seed,
        history={k: [float(v) for v in vals] for k, vals in history.history.items()}, seconds=seconds,
        test_accuracy=float(np.mean(y_pred == data.y_test)), test_loss=float(-np.mean(np.log(picked))),
        y_pred=y_pred, initial_weights=digest, settings=cfg.settings(keras.backend.backend()),
        environment=runtime.environment(), ended_at=time.time(),
    )


def train_missing(data, store: RunStore, todo: list[tuple[dict[str, Any], int]], cfg: ReportConfig, log=print,
                  verbose: int | str = 2) -> None:
    """Train every job in `todo` and save each run as soon as it ends."""
    started = time.monotonic()
    for i, (hp, seed) in enumerate(todo, 1):
        values = ", ".join(f"{k}={v}" for k, v in hp.items())
        log(f"[{i}/{len(todo)}] retraining seed {seed}, {cfg.epochs} epoch{'s' if cfg.epochs > 1 else ''}: {values}")
        run = retrain(data, hp, seed, cfg, verbose=verbose)
        path = store.save(run)
        left = (time.monotonic() - started) / i * (len(todo) - i)
        log(f"    test accuracy {run.test_accuracy:.4f} in {run.seconds:.0f}s, saved as {path}"
            + (f"; about {left / 60:.0f} min left" if left else ""))


def run(cfg: ReportConfig, searches: list[Search], warnings: list[str], log=print, verbose: int | str = 2,
        command: str | None = None) -> Path:
    """Load the data, retrain what is not saved yet, write the report; returns the report folder."""
    from study.data import load_dataset

    started = time.monotonic()
    # Before anything is written: bad data leaves no trace. The test images stay encoded until each
    # evaluation: 0.03 GB less while training (README, memory).
    data = load_dataset(cfg.data, keep_test="encoded")
    log(data.describe())
    for w in warnings:
        log(f"warning: {w}")
    arms = plan(searches)
    output = Path(cfg.output)
    store = RunStore(output / RUNS_FOLDER, cfg.settings(_backend()))
    todo = [(hp, seed) for hp, seed in jobs(arms, cfg) if store.load(hp, seed, len(data.y_test)) is None]
    _say_what_is_saved(store, jobs(arms, cfg), todo, log)
    if todo:  # rendering alone needs no TensorFlow
        with runtime.without_notebook_modules():  # Keras would import matplotlib and IPython for nothing
            import keras
        train_missing(data, store, todo, cfg, log=log, verbose=verbose)
        keras.backend.clear_session()
    # What rendering needs of the data is small: 0.15 GB less at the report's peak on CIFAR-10.
    data = data.without_training_images()
    runtime.release_freed_memory()
    runs = {name: [store.load(hp, s) for s in range(cfg.seed, cfg.seed + cfg.seeds)] for name, hp in arms.items()}
    _write(output, cfg, data, searches, runs, warnings, {"command": command, "seconds": time.monotonic() - started})
    log(f"report: {output / 'report.md'}")
    return output


def _backend() -> str:
    """Keras's backend without importing Keras (what keras.backend.backend() will say)."""
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def _say_what_is_saved(store: RunStore, all_jobs: list, todo: list, log) -> None:
    saved = len(all_jobs) - len(todo)
    log(f"retrainings: {saved} of {len(all_jobs)} already saved in {store.folder}, {len(todo)} to train")
    other = store.other_settings(all_jobs)
    if other:
        what = ", ".join(f"{name} ({n})" for name, n in other.items())
        log(f"{store.folder}: saved runs of these configurations with another {what} are kept but not reused")


def _write(output: Path, cfg: ReportConfig, data, searches, runs, warnings, invocation: dict[str, Any]) -> None:
    """Render into a temporary folder beside `output`, carry the saved runs over, and swap it in whole."""
    from study.render import render

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        render(tmp, cfg, data, searches, runs, warnings, invocation)
        if (output / "README.md").exists():  # the repository's reports/README.md stays
            shutil.copy2(output / "README.md", tmp / "README.md")
        if (output / RUNS_FOLDER).exists():
            shutil.copytree(output / RUNS_FOLDER, tmp / RUNS_FOLDER)
        _swap(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
        check_output(Path(cfg.output))
        print(f"configuration: {json.dumps(cfg.to_dict())}", flush=True)
        if cfg.data_from.startswith("search"):
            print(f"data: as recorded by {cfg.data_from} (data flags change it)", flush=True)
        print(f"searches: {', '.join(s.name for s in searches) or f'none found in {cfg.directory}'}", flush=True)
        run(cfg, searches, warnings, log=lambda msg: print(msg, flush=True),
            command=shlex.join([*PROG.split(), *argv]))
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
