"""`python -m study.report`: retrain the baseline and each search's best configuration, evaluate once on the test set.

Writes `<output>/report.md` with its figures (PNG), tables (CSV), `metrics.json` and `config.json`.
The test set is read here and nowhere else. The report is built in a temporary folder beside
`<output>` and swapped in at the end, so a crash never leaves half a report.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from study import runtime
from study.config import BASELINE, OPTIMIZER_COMPARISON, DataConfig, SearchConfig, StudyError
from study.search import Parser, add_data_arguments

PROG = "python -m study.report"
_DATA_FLAGS = ("data_dir", "subset", "image_size", "channels", "split_seed")


@dataclass(frozen=True)
class ReportConfig:
    """Everything `python -m study.report` needs; printed at start and saved as config.json in the report."""

    directory: str = "tuner_results"  # where the searches are
    output: str = "reports"  # the report folder (replaced as a whole)
    epochs: int = BASELINE.epochs  # every retraining, no early stopping (as the notebook)
    seeds: int = 1  # repetitions of every retraining, seeds seed..seed+K-1
    seed: int = 1  # initial weights and data order of the first repetition
    batch_size: int = BASELINE.batch_size
    data: DataConfig = field(default_factory=DataConfig)
    data_from: str = "flags"  # "flags", "search <name>" (its config.json) or "default"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Search:
    """One project under --directory: its configuration, trials and best completed trial."""

    name: str
    config: SearchConfig
    trials: Any  # pandas DataFrame from study.results.trials_frame
    best: Any  # pandas Series or None


@dataclass
class Run:
    """One retraining, evaluated on the test set."""

    name: str
    hyperparameters: dict[str, Any]
    seed: int
    history: dict[str, list[float]]
    seconds: float
    test_accuracy: float
    test_loss: float
    y_pred: np.ndarray
    initial_weights: str  # sha1 of the initial weights: equal for runs that started alike


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--directory", default="tuner_results", help="where the searches are (default: tuner_results)")
    p.add_argument("--output", default="reports", help="report folder, replaced as a whole (default: reports)")
    p.add_argument("--epochs", type=int, default=BASELINE.epochs,
                   help=f"epochs of every retraining (default: {BASELINE.epochs}, the notebook's)")
    p.add_argument("--seeds", type=int, default=1, metavar="K",
                   help="repeat every retraining with K seeds: mean, std and a t interval (default: 1, Wilson interval)")
    p.add_argument("--seed", type=int, help="first seed (default: the first search's --seed, else 1)")
    p.add_argument("--batch-size", type=int, default=BASELINE.batch_size, help=f"default: {BASELINE.batch_size}")
    p.add_argument("--full-data", action="store_true",
                   help="retrain on every image even if the searches used --subset (search cheaply, report at full budget)")
    add_data_arguments(p)
    # None marks "not given": without data flags the searches' own data configuration is used.
    p.set_defaults(image_size=None, channels=None, split_seed=None)
    return p


def find_searches(directory: Path) -> list[Search]:
    """Every project folder under `directory`; StudyError for an unreadable or foreign folder."""
    from study import results

    if not directory.exists():
        return []
    if not directory.is_dir():
        raise StudyError(f"--directory {directory} is not a directory")
    try:
        folders = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as e:
        raise StudyError(f"cannot read --directory {directory}: {e.strerror}") from None
    found = []
    for folder in folders:
        saved = folder / "config.json"
        if not saved.exists():
            raise StudyError(f"{folder} is not a study search (no config.json); move it out of --directory {directory}")
        try:
            cfg = SearchConfig.from_json(saved.read_text(encoding="utf-8"))
            trials = results.trials_frame(folder)
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise StudyError(f"cannot read the search in {folder} ({type(e).__name__}: {e})") from None
        found.append(Search(folder.name, cfg, trials, results.best_trial(trials) if len(trials) else None))
    return found


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
    # The searches' data, changed field by field by the flags given: e.g. --full-data retrains the
    # winners of a search run on a --subset on every image (search cheaply, report at full budget).
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
        flags = ", ".join("--full-data" if f == "subset" and args.full_data else f"--{f.replace('_', '-')}"
                          for f in changes)  # fmt: skip
        data_from = f"{data_from}, changed by {flags}" if searches else "flags"
    seed = args.seed if args.seed is not None else (searches[0].config.seed if searches else 1)
    cfg = ReportConfig(directory=args.directory, output=args.output, epochs=args.epochs, seeds=args.seeds,
                       seed=seed, batch_size=args.batch_size, data=data, data_from=data_from)  # fmt: skip
    return cfg, warnings


def check_output(output: Path) -> None:
    """Refuse, before any training, an output that cannot be written or that holds something else than a report."""
    if output.exists():
        if not output.is_dir():
            raise StudyError(f"--output {output} exists and is not a directory")
        others = {p.name for p in output.iterdir()} - {"README.md"}
        if others and not (output / "report.md").exists():
            raise StudyError(f"--output {output} holds files that are not a report; choose another --output")
    ancestor = output.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK):
        raise StudyError(f"cannot write --output {output}: {ancestor} is not a writable directory")


# --- training -------------------------------------------------------------------------------------

def initial_model(input_shape: tuple[int, ...], num_classes: int, hyperparameters: dict[str, Any], seed: int):
    """The model before training: the same seed gives the same initial weights whatever the optimizer."""
    import keras

    from study.model import build_model

    keras.utils.set_random_seed(seed)
    return build_model(input_shape, num_classes, **hyperparameters)


def retrain(data, name: str, hyperparameters: dict[str, Any], seed: int, cfg: ReportConfig, verbose: int | str = 2) -> Run:
    """Train on the training split (validating on the validation split), then evaluate once on the test set."""
    import keras

    from study.model import fit, predict_proba

    keras.backend.clear_session()  # the previous model's graphs, as Keras Tuner does between trials
    model = initial_model(data.input_shape, data.num_classes, hyperparameters, seed)
    digest = hashlib.sha1(b"".join(np.ascontiguousarray(w).tobytes() for w in model.get_weights())).hexdigest()
    start = time.monotonic()
    history = fit(model, data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                  epochs=cfg.epochs, batch_size=cfg.batch_size, seed=seed, verbose=verbose)  # fmt: skip
    seconds = time.monotonic() - start
    proba = predict_proba(model, data.x_test)
    y_pred = proba.argmax(axis=1)
    picked = np.clip(proba[np.arange(len(proba)), data.y_test], 1e-7, 1.0)  # Keras clips the same way
    return Run(
        name=name, hyperparameters=dict(hyperparameters), seed=seed,
        history={k: [float(v) for v in vals] for k, vals in history.history.items()}, seconds=seconds,
        test_accuracy=float(np.mean(y_pred == data.y_test)), test_loss=float(-np.mean(np.log(picked))),
        y_pred=y_pred, initial_weights=digest,
    )  # fmt: skip


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


def train_all(data, arms: dict[str, dict[str, Any]], cfg: ReportConfig, log=print, verbose: int | str = 2) -> dict[str, list[Run]]:
    """Every arm with every seed; an identical configuration with the same seed is trained once and shared."""
    seeds = range(cfg.seed, cfg.seed + cfg.seeds)
    jobs = [(name, hp, s) for name, hp in arms.items() for s in seeds]
    unique = {(json.dumps(hp, sort_keys=True), s) for _, hp, s in jobs}
    done: dict[tuple[str, int], Run] = {}
    out: dict[str, list[Run]] = {name: [] for name in arms}
    from study.render import epochs_text, minutes_text

    started = time.monotonic()
    for name, hp, s in jobs:
        key = (json.dumps(hp, sort_keys=True), s)
        if key not in done:
            values = ", ".join(f"{k}={v}" for k, v in hp.items())
            log(f"[{len(done) + 1}/{len(unique)}] retraining {name} (seed {s}, {epochs_text(cfg.epochs)}): {values}")
            done[key] = retrain(data, name, hp, s, cfg, verbose=verbose)
            left = (time.monotonic() - started) / len(done) * (len(unique) - len(done))
            log(f"    {name}: test accuracy {done[key].test_accuracy:.4f} in {done[key].seconds:.0f}s"
                + (f"; about {minutes_text(left)} left" if left else ""))  # fmt: skip
        out[name].append(done[key])
    return out


def run(cfg: ReportConfig, searches: list[Search], warnings: list[str], log=print, verbose: int | str = 2) -> Path:
    """Load the data, retrain every arm, write the report; returns the report folder."""
    from study.data import load_dataset

    data = load_dataset(cfg.data)  # before anything is written: bad data leaves no trace
    log(data.describe())
    for w in warnings:
        log(f"warning: {w}")
    runs = train_all(data, plan(searches), cfg, log=log, verbose=verbose)

    output = Path(cfg.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        from study.render import render

        render(tmp, cfg, data, searches, runs, warnings)
        if (output / "README.md").exists():  # the repository's reports/README.md stays
            shutil.copy2(output / "README.md", tmp / "README.md")
        _swap(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"report: {output / 'report.md'}")
    return output


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
    try:
        args = build_parser().parse_args(argv)
        searches = find_searches(Path(args.directory))
        cfg, warnings = resolve_config(args, searches)
        check_output(Path(cfg.output))
        print(f"configuration: {json.dumps(cfg.to_dict())}", flush=True)
        if cfg.data_from.startswith("search"):
            print(f"data: as recorded by {cfg.data_from} (data flags change it)", flush=True)
        print(f"searches: {', '.join(s.name for s in searches) or f'none found in {cfg.directory}'}", flush=True)
        run(cfg, searches, warnings, log=lambda msg: print(msg, flush=True))
    except StudyError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except KeyboardInterrupt:
        print("\ninterrupted; the previous report (if any) is unchanged", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
