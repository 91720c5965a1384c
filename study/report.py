"""`python -m study.report`: race the baseline and the searches' bests on validation, confirm on fresh seeds, test once.

Writes `<output>/report.md` with its figures (PNG), tables (CSV), `metrics.json` and `config.json`.
The test set is read here and nowhere else. Every retraining is saved in `<output>/runs/` as soon
as it ends, so a rerun trains only what is missing; the rendered report is built in a temporary
folder and swapped in whole, so a crash never leaves half a report.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from study import arms as arms_lib
from study import cli, cluster, devices, export, locks, racing, retrain, runtime, stats
from study import jobs as jobs_lib
from study.config import BASELINE, OPTIMIZERS, ReportConfig
from study.records import MODELS_FOLDER, RUNS_FOLDER, RunStore, Search

# The configuration and the refusals, the command's and the Python API's (report.resolve_config, ...).
from study.report_setup import (  # noqa: F401
    DEFAULT_DIRECTORY, check_output, find_searches, first_seed, load_searches, resolve_config, settings_text,
)

if TYPE_CHECKING:
    from study.model import ModelFunction

PROG = "python -m study.report"


def build_parser() -> argparse.ArgumentParser:
    p = cli.Parser(prog=PROG, description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--directory", help=f"where the searches are, one project folder each (default: "
                   f"{DEFAULT_DIRECTORY}; when that folder is absent or holds no search, the report compares the "
                   "baseline with SGD and RMSprop only)")
    p.add_argument("--output", default="reports",
                   help="report folder; its runs/ subfolder keeps every retraining for reruns (default: reports)")
    p.add_argument("--epochs", type=int, default=BASELINE.epochs,
                   help=f"epochs of every retraining (default: {BASELINE.epochs}, the notebook's)")
    p.add_argument("--seeds", type=int, default=ReportConfig.seeds, metavar="K",
                   help="the race: retrain every configuration with up to K seeds, compared in pairs on validation "
                   f"(default: {ReportConfig.seeds}; 1: a quick look, Wilson interval and McNemar's test)")
    p.add_argument("--confirm-seeds", type=int, default=ReportConfig.confirm_seeds, metavar="C",
                   help="then retrain the challenger the race picked and the baseline with C fresh seeds: their "
                   f"paired test difference alone decides (default: {ReportConfig.confirm_seeds}; 0: the race's own "
                   "runs decide, an exploratory claim)")
    p.add_argument("--min-seeds", type=int, default=ReportConfig.min_seeds, metavar="M",
                   help="racing: from M seeds on, an arm worse on validation than the best arm racing, beyond the "
                   "noise, or that cannot beat the baseline beyond the noise even with K seeds, gets no more seeds "
                   f"(default: {ReportConfig.min_seeds}; M = K: every arm gets K seeds)")
    p.add_argument("--candidates", type=int, metavar="N", help="race the N best distinct configurations of all "
                   "the searches together, by their search validation accuracy (default: each search's best)")
    p.add_argument("--seed", type=int, help="the race's first seed; no race or confirmation seed may be a search's "
                   "(default: one past the largest seed any search trained with, else 1)")
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
    p.add_argument("--baseline", metavar="NAME=VALUE,...", help="the recipe every arm is compared with, as changes "
                   "to the model's defaults, e.g. optimizer=sgd,learning_rate=0.05,batch_size=128 (default: the "
                   "notebook's, or a --model's own defaults)")
    p.add_argument("--compare-optimizers", metavar="LIST", help="the optimizer arms, each at Keras's default "
                   "learning rate with the baseline's other values: a comma-separated list from "
                   f"{', '.join(OPTIMIZERS)}, or none (default: sgd,rmsprop for the notebook's CNN, none for a "
                   "--model)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="train on the workers of the Dask scheduler at ADDRESS "
                   "(e.g. tcp://10.0.0.5:8786; docs/distributed.md): every decision stays here, the runs come back")
    p.add_argument("--threads", type=int, metavar="N", help="TensorFlow's threads in every retraining, which change "
                   "its numbers (default: TensorFlow's, this machine's cores; with --scheduler, this machine's cores)")
    p.add_argument("--reuse", action="append", default=[], metavar="REPORT", help="reuse the saved runs of another "
                   "report folder where they have this report's settings, instead of training them (copied into "
                   "runs/, listed as reused, their compute not counted as this report's; repeatable)")
    cli.add_data_arguments(p, searched="the data recorded in the config.json of the first search under --directory, "
                       "project folders in alphabetical order (all of a report's searches normally share it); "
                       "without searches, the search's defaults (CIFAR-10 via keras.datasets, 32x32, 3 channels, "
                       f"split seed {BASELINE.split_seed})")
    # None marks "not given": without data flags the searches' own data configuration is used.
    p.set_defaults(image_size=None, channels=None, split_seed=None)
    return p


def run(cfg: ReportConfig, searches: list[Search], warnings: list[str], log=print, verbose: int | str = 2,
        command: str | None = None, model: ModelFunction | None = None, figures: dict | None = None) -> Path:
    """Load the data, retrain what is not saved yet, write the report; returns the report folder.

    `model`: the `ModelFunction` `cfg.model` names, when the caller has it; `figures`: filled with the report's
    figures by name (the notebook's view of them).
    """
    from study.data import load_dataset

    # Labels, samples and the test images kept encoded: what planning and rendering need. The training
    # images are decoded only when something is left to train, so rendering alone takes seconds.
    # The notebook's CNN needs no TensorFlow to be planned: rendering alone then imports none. A --model
    # that cannot be imported answers before any image is decoded.
    model = model or (_load_model(cfg) if cfg.model is not None else None)
    data = load_dataset(cfg.data, keep_test="encoded", keep_train=False)
    log(data.describe())
    for w in warnings:
        log(f"warning: {w}")
    output = Path(cfg.output)
    store = RunStore(output / RUNS_FOLDER, cfg.settings(cfg.backend), tuple(Path(r) / RUNS_FOLDER for r in cfg.reuse))
    arms = arms_lib.plan(searches, _baseline(model, data, cfg), cfg.batch_size, cfg.candidates, cfg.optimizers_compared)
    n_test = len(data.y_test)
    state = arms_lib.race(store, arms, cfg, n_test)
    pairs = arms_lib.confirmation_jobs(store, arms, state, cfg, n_test)
    _say_what_is_saved(store, arms_lib.jobs(arms, cfg), state, pairs, cfg, log)
    if state.todo or pairs or cfg.final_fit:
        data = None  # its encoded test images are not held twice while training
        data, model = _train(cfg, store, arms, model, log, verbose)
        state = arms_lib.race(store, arms, cfg, n_test)
    runs = arms_lib.raced_runs(store, arms, state)
    confirmation = arms_lib.confirmation(store, arms, state, cfg, n_test)
    analysis = stats.analyse(runs, data.y_test, dropped=state.dropped, confirmation=confirmation)
    models = export.models_to_export(runs, analysis, store, cfg, confirmation)
    invocation = {"command": command}
    _write(output, cfg, data, searches, runs, analysis, warnings, invocation,
           lambda folder: export.export_models(folder, models, model, data.input_shape, data.num_classes,
                                        previous=output / MODELS_FOLDER), confirmation, figures)
    log(f"report: {output / 'report.md'}")
    return output


def _train(cfg: ReportConfig, store: RunStore, arms: dict[str, dict[str, Any]], model: ModelFunction | None, log,
           verbose: int | str) -> tuple[Any, ModelFunction]:
    """Load every image, run the race round by round, then the confirmation (and the final fit); returns the data
    without its training images."""
    from study.data import load_dataset

    # Before any retraining is saved: bad data leaves no trace. The test images stay encoded until each
    # evaluation: 0.03 GB less while training (README, memory). Decoded before TensorFlow is imported,
    # whose allocations then reuse what decoding freed.
    # Where workers train (--parallel, --scheduler), only they decode the images: the command keeps labels and samples.
    data = load_dataset(cfg.data, keep_test="encoded", keep_train=jobs_lib.trains_here(cfg) or cfg.final_fit)
    n_test = len(data.y_test)
    model = model or _load_model(cfg)
    state = arms_lib.race(store, arms, cfg, n_test)
    while state.todo:
        log(f"round {state.round + 1} of {cfg.seeds} (seed {cfg.seed + state.round}): {state.live_text()}"
            + "".join(f"; {name} dropped after {a.dropped_after} seeds ({a.dropped_because})"
                      for name, a in state.arms.items() if a.dropped_after == state.round))
        todo = [retrain.Job((job,)) for job in state.todo]
        jobs_lib.run_jobs(data, store, todo, cfg, model=model, log=log, verbose=verbose,
                         ahead=state.left - len(state.todo) + 2 * cfg.confirm_seeds, live=state.live_text())
        state = arms_lib.race(store, arms, cfg, n_test)
    _say_how_the_race_ended(state, cfg, log)
    challenger = arms_lib.challenger(store, arms, state)
    pairs = arms_lib.confirmation_jobs(store, arms, state, cfg, n_test)
    if pairs:
        seeds = cfg.confirmation_seeds
        log(f"confirmation: {challenger} and the baseline on seeds {seeds.start}-{seeds.stop - 1}, which no search "
            f"and no race trained ({len(pairs)} pairs to train, each on one machine)")
        jobs_lib.run_jobs(data, store, pairs, cfg, model=model, log=log, verbose=verbose)
    if cfg.final_fit:
        runs = arms_lib.raced_runs(store, arms, state)
        confirmation = arms_lib.confirmation(store, arms, state, cfg, n_test)
        recommended = stats.analyse(runs, data.y_test, dropped=state.dropped, confirmation=confirmation).recommended
        retrain.final_fit(data, store, arms[recommended], cfg, model, log, verbose)
    # The last model's graphs and input pipeline hold the training images: gone with the session. What
    # rendering needs of the data is small: 0.15 GB less at the report's peak on CIFAR-10.
    import keras

    keras.backend.clear_session()
    data = data.without_training_images()
    runtime.release_freed_memory()
    return data, model


def _say_how_the_race_ended(state: racing.Race, cfg: ReportConfig, log) -> None:
    if state.round < cfg.seeds and not state.todo:  # it ended early: every challenger dropped
        log(f"the race dropped every challenger after {state.round} seeds: nothing is left to beat the baseline, "
            "which trains no more seeds")


def _load_model(cfg: ReportConfig) -> ModelFunction:
    with runtime.without_notebook_modules():  # Keras would import matplotlib and IPython for nothing
        from study import model as model_lib
    return model_lib.load_model_function(cfg.model)


def _baseline(model: ModelFunction | None, data, cfg: ReportConfig) -> dict[str, Any]:
    """The baseline's hyperparameters: the model's defaults (the notebook's), changed by --baseline."""
    if model is None:
        return {**BASELINE.hyperparameters(), **cfg.baseline}
    from study import model as model_lib

    model_lib.check_values(model, cfg.baseline, data.input_shape, data.num_classes)
    return {**model_lib.default_hyperparameters(model, data.input_shape, data.num_classes), **cfg.baseline}


def _confirming_text(pairs: list[retrain.Job]) -> str:
    """How many of the confirmation pairs' runs train: a saved half is kept where its machine kind matches."""
    runs = sum(len(p.runs) for p in pairs)
    saved = sum(p.kept_kind(i) is not None for p in pairs for i in range(len(p.runs)))
    return f"{runs - saved} ({runs} if the {saved} saved halves ran on another kind of machine)" if saved else str(runs)


def _say_what_is_saved(store: RunStore, all_jobs: list, state: racing.Race, pairs: list[retrain.Job],
                       cfg: ReportConfig, log) -> None:
    from study.formats import seeds_text

    confirming = (f", then at most {2 * cfg.confirm_seeds} to confirm the challenger on "
                  f"{seeds_text(cfg.confirmation_seeds)}" if state.todo and cfg.confirm_seeds
                  else f", then {_confirming_text(pairs)} to confirm the challenger" if pairs else "")
    if cfg.min_seeds < cfg.seeds and state.left:
        log(f"retrainings: {state.saved} already saved in {store.folder}, at most {state.left} to train in the race "
            f"(from {cfg.min_seeds} seeds on, an arm worse on validation than the best arm racing, or that cannot "
            f"beat the baseline beyond the noise, gets no more){confirming}")
    else:
        log(f"retrainings: {state.saved} of {state.saved + state.left} already saved in {store.folder}, "
            f"{state.left} to train{confirming}")
    other = store.other_settings(all_jobs)
    if other:
        what = ", ".join(f"{name} ({n})" for name, n in other.items())
        log(f"{store.folder}: saved runs of these configurations with another {what} are kept but not reused")


def _write(output: Path, cfg: ReportConfig, data, searches, runs, analysis, warnings, invocation: dict[str, Any],
           export: Callable[[Path], list[dict[str, Any]]], confirmation=None, figures: dict | None = None) -> None:
    """Export the model files and render into a temporary folder beside `output`, carry the saved runs over,
    and swap it in whole."""
    from study.render import render

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        models = export(tmp / MODELS_FOLDER)
        render(tmp, cfg, data, searches, runs, analysis, warnings, invocation, models, confirmation, figures)
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
    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> None:
        args = build_parser().parse_args(argv)
        searches = load_searches(args.directory)
        cfg, warnings = resolve_config(args, searches)
        check_output(cfg, args.overwrite)
        print(settings_text(cfg, searches), flush=True)
        command = shlex.join([*PROG.split(), *argv])
        with cluster.session(cfg), locks.hold(Path(cfg.output), command, what="report"):  # one report, one process
            run(cfg, searches, warnings, log=lambda msg: print(msg, flush=True), command=command)

    return cli.command(PROG, body, "finished retrainings are saved: rerun the same command to go on")


if __name__ == "__main__":
    raise SystemExit(main())
