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

from study.config import BASELINE, DataConfig, SearchConfig, StudyError
from study.search import add_data_arguments, data_config

PROG = "python -m study.report"
# Each optimizer at Keras's default learning rate, i.e. what `compile(optimizer="sgd")` gives (as in
# the notebook); the searches explore other learning rates.
OPTIMIZER_ARMS = {"adam": BASELINE.learning_rate, "sgd": 1e-2, "rmsprop": 1e-3}
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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise StudyError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--directory", default="tuner_results", help="where the searches are (default: tuner_results)")
    p.add_argument("--output", default="reports", help="report folder, replaced as a whole (default: reports)")
    p.add_argument("--epochs", type=int, default=BASELINE.epochs,
                   help=f"epochs of every retraining (default: {BASELINE.epochs}, the notebook's)")
    p.add_argument("--seeds", type=int, default=1, metavar="K",
                   help="repeat every retraining with K seeds: mean, std and a t interval (default: 1, Wilson interval)")
    p.add_argument("--seed", type=int, help="first seed (default: the first search's --seed, else 1)")
    p.add_argument("--batch-size", type=int, default=BASELINE.batch_size, help=f"default: {BASELINE.batch_size}")
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
    if any(getattr(args, f) is not None for f in _DATA_FLAGS):
        defaults = DataConfig()
        filled = {"image_size": defaults.image_size, "channels": defaults.channels, "split_seed": defaults.split_seed}
        data = data_config(argparse.Namespace(**{f: getattr(args, f) if getattr(args, f) is not None else filled.get(f)
                                                 for f in _DATA_FLAGS}))  # fmt: skip
        data_from = "flags"
    elif searches:
        data, data_from = searches[0].config.data, f"search {searches[0].name}"
    else:
        data, data_from = DataConfig(), "default"
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
    from study.model import fit, predict_proba

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
    for optimizer, lr in OPTIMIZER_ARMS.items():
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
    started = time.monotonic()
    for name, hp, s in jobs:
        key = (json.dumps(hp, sort_keys=True), s)
        if key not in done:
            values = ", ".join(f"{k}={v}" for k, v in hp.items())
            log(f"[{len(done) + 1}/{len(unique)}] retraining {name} (seed {s}, {_epochs(cfg.epochs)}): {values}")
            done[key] = retrain(data, name, hp, s, cfg, verbose=verbose)
            left = (time.monotonic() - started) / len(done) * (len(unique) - len(done))
            log(f"    {name}: test accuracy {done[key].test_accuracy:.4f} in {done[key].seconds:.0f}s"
                + (f"; about {_minutes(left)} left" if left else ""))  # fmt: skip
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


# --- the report ------------------------------------------------------------------------------------

class _Writer:
    """Saves figures (PNG) and tables (CSV) into the report folder; returns the markdown that shows them."""

    def __init__(self, root: Path):
        self.root = root
        (root / "figures").mkdir()
        (root / "tables").mkdir()

    def figure(self, fig, name: str, alt: str) -> str:
        import matplotlib.pyplot as plt

        fig.savefig(self.root / "figures" / f"{name}.png", dpi=100)
        plt.close(fig)
        return f"![{alt}](figures/{name}.png)"

    def table(self, frame, name: str, shown=None) -> str:
        from study.results import markdown_table

        frame.to_csv(self.root / "tables" / f"{name}.csv", index=False)
        table = markdown_table(frame if shown is None else shown)
        return f"{table}\n\n<sub>[tables/{name}.csv](tables/{name}.csv)</sub>"


def summarize(runs: list[Run], n_test: int) -> dict[str, Any]:
    """Means over seeds, and a 95% interval of test accuracy: Wilson for one seed, Student-t over seeds."""
    from study.results import mean_interval, wilson_interval

    acc = [r.test_accuracy for r in runs]
    if len(runs) == 1:
        (low, high), kind, std = wilson_interval(round(acc[0] * n_test), n_test), "Wilson", float("nan")
    else:
        (low, high), kind, std = mean_interval(acc), "t", float(np.std(acc, ddof=1))
    val = [r.history["val_accuracy"] for r in runs]
    return {
        "test_accuracy": float(np.mean(acc)), "test_accuracy_std": std, "ci_low": low, "ci_high": high,
        "interval": kind, "test_loss": float(np.mean([r.test_loss for r in runs])),
        "final_train_accuracy": float(np.mean([r.history["accuracy"][-1] for r in runs])),
        "final_val_accuracy": float(np.mean([v[-1] for v in val])),
        "best_val_accuracy": float(np.mean([max(v) for v in val])),
        "best_epoch": float(np.mean([int(np.argmax(v)) + 1 for v in val])),
        "seconds": float(np.mean([r.seconds for r in runs])),
        "seeds": [r.seed for r in runs], "test_accuracies": acc,
    }  # fmt: skip


def compare(base: list[Run], other: list[Run], y_test: np.ndarray) -> tuple[str, float]:
    """(test, p-value) for "other differs from base": McNemar's exact test on the paired test
    predictions for one seed, Welch's t-test over seeds for several."""
    from scipy.stats import binomtest, ttest_ind

    if all(a is b for a, b in zip(base, other)):
        return "same run", 1.0
    if len(base) == 1:
        right_b, right_o = base[0].y_pred == y_test, other[0].y_pred == y_test
        only_b, only_o = int(np.sum(right_b & ~right_o)), int(np.sum(right_o & ~right_b))
        p = binomtest(min(only_b, only_o), only_b + only_o, 0.5).pvalue if only_b + only_o else 1.0
        return "McNemar", float(p)
    p = ttest_ind([r.test_accuracy for r in other], [r.test_accuracy for r in base], equal_var=False).pvalue
    return "Welch t", float(p) if np.isfinite(p) else 1.0


def _epochs(n: int) -> str:
    return f"{n} epoch{'s' if n != 1 else ''}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f}s"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _acc(s: dict[str, Any]) -> str:
    spread = f" ± {100 * s['test_accuracy_std']:.1f}" if np.isfinite(s["test_accuracy_std"]) else ""
    return f"{_pct(s['test_accuracy'])}{spread}"


def _interval(s: dict[str, Any]) -> str:
    return f"{_pct(s['ci_low'])} – {_pct(s['ci_high'])} ({s['interval']})"


def _hp(hp: dict[str, Any]) -> str:
    return f"{hp['optimizer']}, lr {hp['learning_rate']:g}, dropout {hp['dropout_1']:g}/{hp['dropout_2']:g}/{hp['dropout_3']:g}"


def summary_text(rows: list[dict[str, Any]], cfg: ReportConfig, n_test: int, searched: bool) -> str:
    """Plain-language answer from the final comparison rows (the first is the baseline)."""
    base = rows[0]
    noise = (f"the 95% intervals only cover the sampling of the {n_test} test images, not the spread between "
             f"training runs (`--seeds 3` measures that)" if cfg.seeds == 1
             else f"means over {cfg.seeds} seeds with Student-t intervals")  # fmt: skip
    if not searched:
        return (f"No search was found, so only the baseline was evaluated: {_acc(base)} test accuracy "
                f"(95% interval {_interval(base)}); {noise}.")  # fmt: skip
    winner = max(rows, key=lambda r: r["test_accuracy"])
    if winner["test_accuracy"] > base["test_accuracy"]:
        text = (f"**{winner['name']}** ({_hp(winner['hyperparameters'])}) won with {_acc(winner)} test accuracy, "
                f"{100 * (winner['test_accuracy'] - base['test_accuracy']):+.1f} points against the baseline's "
                f"{_acc(base)}")  # fmt: skip
        other = winner
    else:
        text = (f"No search's best configuration beat the notebook's baseline ({_hp(base['hyperparameters'])}, "
                f"{_acc(base)} test accuracy).")  # fmt: skip
        same = [r["name"] for r in rows[1:] if r["hyperparameters"] == base["hyperparameters"]]
        if same:
            text += f" {' and '.join(same)} {'is' if len(same) == 1 else 'are'} the baseline's own configuration."
        different = [r for r in rows[1:] if r["hyperparameters"] != base["hyperparameters"]]
        if not different:
            return f"{text} Note that {noise}." + _epochs_note(cfg)
        other = max(different, key=lambda r: r["test_accuracy"])
        text += (f" The best other configuration, {other['name']} ({_hp(other['hyperparameters'])}), reached "
                 f"{_acc(other)}, {100 * (other['test_accuracy'] - base['test_accuracy']):+.1f} points")  # fmt: skip
    significant = other["p_value"] < 0.05
    text += (f" ({other['test']} test, p = {other['p_value']:.2g}: the difference is "
             f"{'larger than the noise' if significant else 'within the noise and could be chance'}). Note that {noise}.")
    return text + _epochs_note(cfg)


def _epochs_note(cfg: ReportConfig) -> str:
    if cfg.epochs == BASELINE.epochs:
        return ""
    return f" Every model was trained for {_epochs(cfg.epochs)} instead of the notebook's {BASELINE.epochs}: a quick look."


def render(root: Path, cfg: ReportConfig, data, searches: list[Search], runs: dict[str, list[Run]], warnings: list[str]) -> None:
    """Write report.md, figures/, tables/, metrics.json and config.json into `root`."""
    import pandas as pd
    from sklearn.metrics import classification_report, confusion_matrix

    from study import plots, results, storage

    out, names, n_test = _Writer(root), list(data.class_names), len(data.y_test)
    stats = {name: summarize(rs, n_test) for name, rs in runs.items()}
    md = [f"# Study report\n\nData: {data.describe()}. Every model was trained for {_epochs(cfg.epochs)} "
          f"(batch {cfg.batch_size}, no early stopping) with seeds {stats['baseline']['seeds']}, and evaluated "
          "once on the test set. Configuration: [config.json](config.json); every number: [metrics.json](metrics.json)."]
    md += [f"> **Warning:** {w}" for w in warnings]
    if cfg.data_from.startswith("search"):
        md.append(f"The data configuration is the one recorded by {cfg.data_from}.")

    # Data
    splits = {"train": data.y_train, "validation": data.y_val, "test": data.y_test}
    images = {"train": data.x_train, "validation": data.x_val, "test": data.x_test}
    shapes = pd.DataFrame([{"split": k, "images": str(images[k].shape), "labels": str(v.shape)} for k, v in splits.items()])
    counts = pd.DataFrame({k: np.bincount(v, minlength=len(names)) for k, v in splits.items()}, index=names)
    md += ["## Data", out.figure(plots.sample_images(data.x_train, data.y_train, names), "samples", "sample images"),
           out.table(shapes, "data_shapes"), out.table(counts.rename_axis("class").reset_index(), "label_counts"),
           out.figure(plots.label_counts(counts), "label_counts", "images per class and split")]  # fmt: skip

    # Baseline: the details come from its first seed
    first = runs["baseline"][0]
    b = stats["baseline"]
    report = classification_report(data.y_test, first.y_pred, labels=range(len(names)), target_names=names,
                                   output_dict=True, zero_division=0)  # fmt: skip
    cls = pd.DataFrame([{"class": k, **v} for k, v in report.items() if isinstance(v, dict)])
    cls["support"] = cls["support"].astype(int)
    matrix = confusion_matrix(data.y_test, first.y_pred, labels=range(len(names)))
    pd.DataFrame({"index": np.arange(n_test), "true": data.y_test, "predicted": first.y_pred,
                  "true_class": [names[i] for i in data.y_test], "predicted_class": [names[i] for i in first.y_pred]}
                 ).to_csv(root / "predictions.csv", index=False)  # fmt: skip
    md += ["## Baseline", f"The notebook's model and recipe: {_hp(first.hyperparameters)}.",
           out.figure(plots.training_curves(first.history, title=f"Baseline (seed {first.seed})"), "baseline_curves", "baseline loss and accuracy"),
           f"**Test accuracy {_acc(b)}** (95% interval {_interval(b)}), test loss {b['test_loss']:.4f}.",
           f"Classification report (seed {first.seed}; per-image predictions: [predictions.csv](predictions.csv)):",
           out.table(cls, "classification_report"),
           out.figure(plots.confusion_heatmap(matrix, names), "confusion_matrix", "confusion matrix"),
           out.figure(plots.prediction_grid(data.x_test, data.y_test, first.y_pred, names, seed=cfg.seed), "predictions", "correct and incorrect test predictions")]  # fmt: skip

    # Optimizers: same initial weights and data order per seed
    opt = [{"optimizer": o, "learning_rate": lr, **stats["baseline" if o == BASELINE.optimizer else o]}
           for o, lr in OPTIMIZER_ARMS.items()]  # fmt: skip
    keys = ["final_train_accuracy", "final_val_accuracy", "best_val_accuracy", "best_epoch", "test_accuracy", "test_accuracy_std", "seconds"]
    opt_frame = pd.DataFrame([{k: r[k] for k in ["optimizer", "learning_rate", *keys]} for r in opt])
    shown = pd.DataFrame([{"optimizer": r["optimizer"], "learning rate": f"{r['learning_rate']:g}",
                           "final train accuracy": _pct(r["final_train_accuracy"]), "final val accuracy": _pct(r["final_val_accuracy"]),
                           "best val accuracy": _pct(r["best_val_accuracy"]), "epoch of best": f"{r['best_epoch']:g}",
                           "test accuracy": _acc(r), "seconds": f"{r['seconds']:.0f}"} for r in opt])  # fmt: skip
    curves = {f"{o} (lr {lr:g})": {"val_accuracy": list(np.mean([r.history["val_accuracy"] for r in runs["baseline" if o == BASELINE.optimizer else o]], axis=0))}
              for o, lr in OPTIMIZER_ARMS.items()}  # fmt: skip
    same = all(len({runs[n][i].initial_weights for n in ("baseline", "sgd", "rmsprop")}) == 1 for i in range(cfg.seeds))
    md += ["## Optimizers", "Each optimizer at Keras's default learning rate (what `compile(optimizer=\"sgd\")` gives), the "
           "baseline's dropouts, trained from scratch " + ("from identical initial weights" if same else "(initial weights DIFFER)")
           + " with the same data order (per seed); Adam is the baseline run. Means over seeds.",
           out.table(opt_frame, "optimizers", shown), out.figure(plots.validation_curves(curves), "optimizer_validation", "validation accuracy per optimizer")]  # fmt: skip

    # Searches
    md.append("## Searches")
    if not searches:
        md.append(f"No search was found in `{cfg.directory}`: run `python -m study.search` first, then rerun the report.")
    else:
        progress = {s.name: results.best_so_far(s.trials) for s in searches if len(s.trials)}
        if progress:
            md.append(out.figure(plots.best_so_far(progress), "search_progress", "best validation accuracy so far per search"))
        for s in searches:
            slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in s.name)
            c = s.config
            md.append(f"### {s.name}\n\n{c.tuner} search, {len(s.trials)} trials of up to {_epochs(c.epochs)} "
                      f"(early stopping {c.early_stopping or 'off'}), seed {c.seed}.")  # fmt: skip
            trials = s.trials.drop(columns="error") if (s.trials["error"].fillna("") == "").all() else s.trials
            md.append(out.table(trials, f"trials_{slug}"))
            if s.best is None:
                md.append("No trial completed: nothing to retrain.")
                continue
            md += [f"Best by validation accuracy: trial {s.best['trial_id']} ({_pct(s.best['val_accuracy'])}).",
                   out.figure(plots.accuracy_vs_learning_rate(s.trials, title=f"{s.name}: validation accuracy against learning rate"), f"lr_{slug}", f"{s.name} learning rates"),
                   out.figure(plots.dropout_effect(s.trials, title=f"{s.name}: effect of each dropout rate"), f"dropout_{slug}", f"{s.name} dropouts")]  # fmt: skip

    # Final comparison
    rows = []
    for name in ["baseline", *(f"{s.name} best" for s in searches if s.best is not None)]:
        test, p = compare(runs["baseline"], runs[name], data.y_test) if name != "baseline" else ("", float("nan"))
        search = next((s for s in searches if f"{s.name} best" == name), None)
        rows.append({"name": name, "hyperparameters": runs[name][0].hyperparameters, **stats[name], "test": test, "p_value": p,
                     "search_val_accuracy": float(search.best["val_accuracy"]) if search else float("nan"),
                     "diff_vs_baseline": stats[name]["test_accuracy"] - b["test_accuracy"]})  # fmt: skip
    final = pd.DataFrame([{"configuration": r["name"], **r["hyperparameters"], **{k: r[k] for k in (
        "search_val_accuracy", "test_accuracy", "test_accuracy_std", "ci_low", "ci_high", "interval", "diff_vs_baseline", "test", "p_value")}}
        for r in rows])  # fmt: skip
    shown = pd.DataFrame([{"configuration": r["name"], "hyperparameters": _hp(r["hyperparameters"]),
                           "val accuracy (search)": _pct(r["search_val_accuracy"]) if np.isfinite(r["search_val_accuracy"]) else "",
                           "test accuracy": _acc(r), "95% interval": _interval(r),
                           "vs baseline": f"{100 * r['diff_vs_baseline']:+.1f} pts" if r["test"] else "",
                           "p": f"{r['p_value']:.3g} ({r['test']})" if r["test"] else ""} for r in rows])  # fmt: skip
    summary = summary_text(rows, cfg, n_test, bool(len(rows) > 1))
    md += ["## Final comparison", out.table(final, "final_comparison", shown),
           out.figure(plots.accuracy_intervals(final.rename(columns={"configuration": "name"})), "final_comparison", "test accuracy with intervals"),
           f"**Summary.** {summary}"]  # fmt: skip
    md.insert(1, f"**Summary.** {summary}")

    all_runs = pd.DataFrame([{"configuration": n, **r.hyperparameters, "seed": r.seed, "test_accuracy": r.test_accuracy,
                              "test_loss": r.test_loss, "seconds": r.seconds, "initial_weights_sha1": r.initial_weights}
                             for n, rs in runs.items() for r in rs])  # fmt: skip
    md += ["### Every retraining", out.table(all_runs.round({"seconds": 1}), "runs")]
    storage.write_text(root / "report.md", "\n\n".join(md) + "\n")
    storage.write_json(root / "config.json", cfg.to_dict())
    storage.write_json(root / "metrics.json", _finite({
        "config": cfg.to_dict(), "class_names": names, "test_size": n_test, "warnings": warnings, "summary": summary,
        "splits": {k: len(v) for k, v in splits.items()},
        "baseline": {"test_accuracy": b["test_accuracy"], "test_loss": b["test_loss"], "classification_report": report,
                     "confusion_matrix": matrix.tolist()},
        "comparison": [{k: v for k, v in r.items()} for r in rows],
        "arms": {n: {"hyperparameters": rs[0].hyperparameters, **stats[n]} for n, rs in runs.items()},
        "searches": [{"name": s.name, "tuner": s.config.tuner, "trials": len(s.trials),
                      "best_trial_id": None if s.best is None else str(s.best["trial_id"]),
                      "best_val_accuracy": None if s.best is None else float(s.best["val_accuracy"])} for s in searches],
    }))  # fmt: skip


def _finite(obj: Any) -> Any:
    """NaN and infinity as null: metrics.json stays strict JSON."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        args = build_parser().parse_args(argv)
        searches = find_searches(Path(args.directory))
        cfg, warnings = resolve_config(args, searches)
        check_output(Path(cfg.output))
        print(f"configuration: {json.dumps(cfg.to_dict())}", flush=True)
        if cfg.data_from.startswith("search"):
            print(f"data: as recorded by {cfg.data_from} (pass data flags to change it)", flush=True)
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
