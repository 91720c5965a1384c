"""`python -m study.search`: a Keras Tuner search of the CNN's optimizer, learning rate, dropouts and training recipe.

Results go to `<directory>/<project-name>/`: Keras Tuner's own state, `config.json`, `trials.csv`,
`trials.md` and each trial's `history.json`. Rerunning the same command resumes the project.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import shlex
import shutil
import signal
import sys
import warnings
from collections.abc import Sequence

from study import cli, locks, parallel, runtime, storage
from study.config import (
    BASELINE, OPTIMIZERS, TRAINING_HYPERPARAMETERS, TUNERS, SearchConfig,
    SearchSpace, StudyError, model_identity, validate_training,
)

PROG = "python -m study.search"
DEFAULT_ORACLE = "127.0.0.1:8000"


def build_parser() -> argparse.ArgumentParser:
    grid, wide = SearchSpace.for_tuner("grid"), SearchSpace.for_tuner("bayesian")
    p = cli.Parser(prog=PROG, description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                epilog="Example: python -m study.search --tuner grid --data-dir ../shared/data/cifar10-jpeg.tar.gz "
                "--subset 2000 --epochs 2")
    p.add_argument("--model", metavar="MODULE:FUNCTION", help="study your own model: a function "
                   "build(hp, input_shape, num_classes) returning an uncompiled keras.Model, as MODULE:FUNCTION "
                   "or path/to/file.py:FUNCTION; its hyperparameters join the search (default: the notebook's CNN)")
    p.add_argument("--tuner", default="grid", choices=TUNERS,
                   help="Keras Tuner's GridSearch, BayesianOptimization or Hyperband (default: grid)")
    p.add_argument("--max-trials", type=int, metavar="N",
                   help="stop after N trials (default: the whole grid; 10 for bayesian; Hyperband's own budget)")
    p.add_argument("--epochs", type=int, default=BASELINE.epochs, help="training epochs per trial "
                   f"(Hyperband: the most epochs any trial gets; default: {BASELINE.epochs})")
    p.add_argument("--batch-size", type=int, default=BASELINE.batch_size, help=f"default: {BASELINE.batch_size}")
    p.add_argument("--early-stopping", type=int, default=3, metavar="PATIENCE",
                   help="stop a trial after PATIENCE epochs without a lower val_loss, keeping its best weights; "
                   "0: off (default: 3)")
    p.add_argument("--seed", type=int, default=1,
                   help="seeds the tuner's sampling, initial weights and data order (default: 1)")
    p.add_argument("--initial-points", type=int, metavar="N",
                   help="bayesian: random trials before the Gaussian process is used (default: a third of the trials)")
    p.add_argument("--directory", default="tuner_results", help="where projects are kept (default: tuner_results)")
    p.add_argument("--project-name", help="project folder inside --directory (default: the tuner's name)")
    p.add_argument("--overwrite", action="store_true", help="delete the project and start over (default: resume it)")
    p.add_argument("--tensorboard", metavar="DIR", help="log every trial's per-epoch metrics and hyperparameters "
                   "for TensorBoard into DIR/<project-name>/<trial>/ (view: tensorboard --logdir DIR)")
    cli.add_data_arguments(p)
    d = p.add_argument_group(
        "distributed tuning",
        "Keras Tuner's chief/worker mode: --parallel K runs a chief and K workers on this machine by itself; "
        "across machines, run the same command once with --role chief and once per worker; the chief hands "
        "out trials over gRPC (no authentication, no encryption: trusted networks only). Equivalent to "
        "setting KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT.",
    )
    d.add_argument("--parallel", type=int, metavar="K",
                   help="run K trials at once on this machine: the command starts a chief on 127.0.0.1 and K "
                   "workers, and stops them (default: 1 on a CPU, where one training already uses every core; "
                   "on a GPU, as many as the report's retrainings side by side)")
    d.add_argument("--role", choices=("chief", "worker"), help="this process's role")
    d.add_argument("--oracle", metavar="HOST:PORT", help=f"where the chief listens (default: {DEFAULT_ORACLE}, "
                   "loopback only; 0.0.0.0:PORT listens on every interface) / what the workers call")
    d.add_argument("--worker-id", type=int, metavar="N", help="a worker's unique number (default: 0)")
    s = p.add_argument_group(
        "search space", "comma-separated lists; a grid tries every combination, the notebook's values first"
    )
    def show(values):
        return ",".join(map(str, values))

    s.add_argument("--optimizers", type=cli.list_of(str, "--optimizers"),
                   help=f"from {', '.join(OPTIMIZERS)} (default: {show(grid.optimizers)})")
    s.add_argument("--learning-rates", type=cli.list_of(float, "--learning-rates"),
                   help=f"default: {show(grid.learning_rates)}; bayesian/hyperband: {show(wide.learning_rates)}")
    for i, name in enumerate(("dropout_1", "dropout_2", "dropout_3"), 1):
        where = ("after the first conv block", "after the second conv block", "after the dense layer")[i - 1]
        s.add_argument(f"--dropout{i}", type=cli.list_of(float, f"--dropout{i}"),
                       help=f"{where} (default: {show(getattr(grid, name))}; "
                       f"bayesian/hyperband: {show(getattr(wide, name))})")
    cli.add_training_arguments(p)
    return p


def _training_space(args: argparse.Namespace) -> dict[str, tuple]:
    """The training hyperparameters' choices given on the command line, as SearchSpace fields."""
    given = {"batch_sizes": args.batch_sizes, "augmentations": args.augmentations, "schedules": args.schedules,
             "weight_decays": args.weight_decays, "label_smoothings": args.label_smoothings}
    return {name: values for name, values in given.items() if values}


def parse_config(argv: Sequence[str] | None = None) -> SearchConfig:
    args = build_parser().parse_args(argv)
    default_space = SearchSpace.for_tuner(args.tuner)
    space = SearchSpace(
        optimizers=args.optimizers or default_space.optimizers,
        learning_rates=args.learning_rates or default_space.learning_rates,
        dropout_1=args.dropout1 or default_space.dropout_1,
        dropout_2=args.dropout2 or default_space.dropout_2,
        dropout_3=args.dropout3 or default_space.dropout_3,
        **_training_space(args),
    )
    if args.model is not None:  # its hyperparameters are its own; the dropouts are the notebook CNN's
        if args.dropout1 or args.dropout2 or args.dropout3:
            raise StudyError("--dropout1/2/3 apply to the notebook's CNN only: a --model declares its own "
                             "hyperparameters")
        if _training_space(args):
            flags = ", ".join(f"--{name.replace('_', '-')}" for name in _training_space(args))
            raise StudyError(f"{flags}: for the notebook's CNN; a --model declares batch_size, augmentation, "
                             "schedule, weight_decay or label_smoothing itself, with hp.Choice")
        space = dataclasses.replace(space, dropout_1=(), dropout_2=(), dropout_3=())
    max_trials = args.max_trials
    if max_trials is None and args.tuner == "bayesian":
        max_trials = 10
    cfg = SearchConfig(
        tuner=args.tuner, directory=args.directory, project_name=args.project_name, max_trials=max_trials,
        epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        early_stopping=args.early_stopping or None, initial_points=args.initial_points,
        overwrite=args.overwrite, role=args.role, oracle=args.oracle, worker_id=args.worker_id,
        parallel=args.parallel,
        tensorboard=args.tensorboard, model=model_identity(args.model), backend=runtime.keras_backend(),
        data=cli.data_config(args), space=space,
    )
    cfg.validate()
    return cfg


def check_project(cfg: SearchConfig) -> bool:
    """Refuse a project searched with other settings, or not by study.search; True when it is resumed.

    Reads config.json only: it answers before any image is decoded and before Keras is imported.
    With --overwrite the project is not looked at (`start_over` deletes it, once the data is known good).
    """
    project = cfg.project_dir
    saved = project / "config.json"
    if cfg.overwrite:
        return False
    if not saved.exists():
        if project.exists() and any(project.iterdir()):
            # Keras Tuner would reload whatever search space it finds there (keras-team/keras-tuner#149).
            raise StudyError(
                f"{project} exists but was not written by study.search (no config.json); "
                "pass --overwrite to replace it or --project-name NEW to keep it"
            )
        return False
    try:
        old = SearchConfig.from_json(saved.read_text())
    except (ValueError, TypeError, KeyError) as e:
        raise StudyError(
            f"{saved} is unreadable ({e}); pass --overwrite to start over or choose another --project-name"
        ) from None
    changed = cfg.differences(old)
    if changed:
        # Another backend is the one difference the command line does not show: name it, and how to go back.
        backend = (f" (it ran on {old.backend}, this is {cfg.backend}: KERAS_BACKEND={old.backend} resumes it)"
                   if "backend" in changed else "")
        raise StudyError(
            f"{project} was searched with a different {', '.join(changed)}{backend}; pass --overwrite to start over "
            f"or --project-name NEW to keep both"
        )
    return True


def start_over(cfg: SearchConfig, log) -> None:
    """--overwrite: delete the project and its TensorBoard logs."""
    if cfg.project_dir.exists():
        log(f"--overwrite: deleting {cfg.project_dir}")
        shutil.rmtree(cfg.project_dir)
    _delete_tensorboard_logs(cfg, log)


def _delete_tensorboard_logs(cfg: SearchConfig, log) -> None:
    """--overwrite: the old trials' TensorBoard logs go too, or TensorBoard would show them beside the new ones.

    Only Keras Tuner's trial folders (those holding an `execution0`) are deleted, in case
    --tensorboard points somewhere that already had a folder of the project's name.
    """
    folder = cfg.tensorboard_dir
    trials = [d for d in folder.iterdir() if (d / "execution0").is_dir()] if folder and folder.is_dir() else []
    if trials:
        log(f"--overwrite: deleting the TensorBoard logs of {len(trials)} trials in {folder}")
    for trial in trials:
        shutil.rmtree(trial)


def distributed_role(cfg: SearchConfig) -> str | None:
    """Set Keras Tuner's KERASTUNER_* variables from the flags; returns "chief", "worker" or None."""
    if cfg.role:
        host, _, port = (cfg.oracle or DEFAULT_ORACLE).rpartition(":")
        os.environ["KERASTUNER_ORACLE_IP"] = host
        os.environ["KERASTUNER_ORACLE_PORT"] = port
        os.environ["KERASTUNER_TUNER_ID"] = "chief" if cfg.role == "chief" else f"tuner{cfg.worker_id or 0}"
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return None
    missing = [v for v in ("KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID") if v not in os.environ]
    if missing:
        raise StudyError(f"KERASTUNER_ORACLE_IP is set but {' and '.join(missing)} is not")
    return "chief" if "chief" in os.environ["KERASTUNER_TUNER_ID"] else "worker"


def run(cfg: SearchConfig, log=print, command: str | None = None, model=None, verbose: int | str = "auto"):
    """Check the project, load the data, run (or resume) the search, write the tables; returns the trials DataFrame.

    `command` (the command line) is recorded in config.json for the report's provenance. The project is
    held by this process throughout (study.locks): a second search on it is refused. A worker of a
    distributed search runs under its chief's hold, and takes none. `model`: the `study.model.ModelFunction`
    that `cfg.model` names, when the caller has it (a function of a notebook); `verbose`: Keras's, per epoch.
    """
    role = distributed_role(cfg)
    owner = role != "worker" and not locks.held_by_parent()
    with locks.hold(cfg.project_dir, command or PROG) if owner else contextlib.nullcontext():
        # Refused here, before any image is decoded or Keras imported: a changed project answers at once.
        resuming = check_project(cfg) if role != "worker" else False
        at_once = trials_at_once(cfg, role)
        if at_once == 1:
            return _run_checked(cfg, role, resuming, log, command, model, verbose)
        from study import arrays, parallel_search

        if arrays.named(cfg.data.data_dir) or (model is not None and model.spec and model.spec.startswith("__main__")):
            raise StudyError("--parallel runs its trials in processes of their own, which cannot receive arrays in "
                             "memory or a function defined in a notebook: save the images with "
                             "tools/make_archive.py and the function in a .py file, or search with parallel=1")

        # --overwrite is the chief's to carry out, once it has loaded the data.
        status = parallel_search.run(cfg, at_once, command or PROG, log)
        if status:
            raise cli.CommandFailed(status)
        from study import results

        return results.trials_frame(cfg.project_dir)


def trials_at_once(cfg: SearchConfig, role: str | None) -> int:
    """--parallel, or by default 1 on a CPU and the report's side-by-side rule on a GPU (study.devices).

    1 in a chief or a worker: they are the processes a --parallel search starts.
    """
    if role is not None or locks.held_by_parent():
        return 1
    planned = cfg.max_trials or _grid_points(cfg)
    if cfg.parallel is not None:
        return min(cfg.parallel, planned)  # no worker that could never get a trial
    from study import devices

    with runtime.without_notebook_modules():  # devices imports Keras to find its accelerator
        return devices.side_by_side(None, planned)


def _grid_points(cfg: SearchConfig) -> int:
    """The trials a search may run when --max-trials does not say: the grid, or many for the other tuners."""
    if cfg.tuner != "grid" or cfg.model is not None:
        return 1_000_000
    return math.prod(len(values) for values in cfg.space.values().values())


def _run_checked(cfg: SearchConfig, role: str | None, resuming: bool, log, command: str | None, model=None,
                 verbose: int | str = "auto"):
    # Heavy imports (TensorFlow) only once the arguments and the project are known to be good.
    with runtime.without_notebook_modules():
        from study import model as model_lib
        from study import results
        from study.hypermodel import StudyHyperModel
        from study.tuners import build_tuner
    from study.data import load_dataset

    # An unknown function: refused before any image is decoded.
    model = model or model_lib.load_model_function(cfg.model)
    # Before anything is written: bad data leaves no trace. A chief trains nothing: its labels and shapes are enough
    # (its workers decode the images, and check them).
    data = load_dataset(cfg.data, keep_test=False, keep_train=role != "chief")
    log(data.describe())
    hypermodel = StudyHyperModel(
        data.input_shape, data.num_classes, space=cfg.space, model=model, epochs=cfg.epochs,
        batch_size=cfg.batch_size, seed=cfg.seed, early_stopping=cfg.early_stopping,
    )
    _check_training_space(cfg, model, data)
    _record_project(cfg, role, data.class_names, command, log)
    tuner = build_tuner(cfg, hypermodel, log=log)
    _announce(cfg, role, tuner, resuming, log)
    try:
        _search(tuner, data, cfg, verbose)
    finally:
        # The chief holds the trials; a worker's folder may not (without a shared filesystem).
        if role != "worker":
            frame = results.trials_frame(cfg.project_dir)
            results.write_tables(frame, cfg.project_dir)
    if role == "worker":
        log("worker done: the chief writes the trials table")
        return None
    if getattr(tuner.oracle, "exhausted", None):
        log(tuner.oracle.exhausted)
    best = tuner.oracle.get_best_trials(1)
    if best and best[0].status == "COMPLETED":
        values = ", ".join(f"{k}={v}" for k, v in best[0].hyperparameters.values.items())
        log(f"best: trial {best[0].trial_id}, val_accuracy {best[0].score:.4f}: {values}")
    log(f"trials table: {cfg.project_dir / 'trials.csv'} and trials.md")
    return frame


def _check_training_space(cfg: SearchConfig, model, data) -> None:
    """Before any trial: a broken model function, or a training hyperparameter no trial can train with (a batch
    larger than the training images, or a --model's own choices of the reserved names), is one line."""
    import keras_tuner

    from study import model as model_lib

    if not cfg.space.batch_sizes:
        validate_training({"batch_size": (cfg.batch_size,)}, "--{}", n_train=len(data.y_train))
    validate_training({k: v for k, v in cfg.space.training().items() if v}, "--{}s", n_train=len(data.y_train))
    if model is not model_lib.NOTEBOOK_CNN:
        hp = keras_tuner.HyperParameters()
        model_lib.check_model(model, hp, data.input_shape, data.num_classes)
        declared = {p.name: _choices(p) for p in hp.space if p.name in TRAINING_HYPERPARAMETERS}
        validate_training(declared, f"--model {model.name}: its {{}}", n_train=len(data.y_train))


def _choices(p) -> list:
    """The values a Keras Tuner hyperparameter can take, as far as a check needs: a range's ends."""
    if hasattr(p, "values"):
        return list(p.values)
    ends = [getattr(p, "min_value", None), getattr(p, "max_value", None), getattr(p, "value", None)]
    return [v for v in ends if v is not None]


def _record_project(cfg: SearchConfig, role: str | None, class_names, command: str | None, log) -> None:
    """--overwrite's deletion (the data is known good by now), the folder, and config.json."""
    # A worker leaves the project's configuration to the chief; with a shared filesystem they
    # would otherwise race on it.
    if cfg.overwrite and role != "worker":
        start_over(cfg, log)
    try:
        cfg.project_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StudyError(f"cannot write to {cfg.project_dir}: {e.strerror}") from None
    if role == "worker":
        return
    saved = {**cfg.to_dict(), "class_names": class_names, "command": command}
    storage.write_json(cfg.project_dir / "config.json", saved)


def _announce(cfg: SearchConfig, role: str | None, tuner, resuming: bool, log) -> None:
    if resuming:
        done = sum(t.status in ("COMPLETED", "FAILED") for t in tuner.oracle.trials.values())
        log(f"resuming {cfg.project_dir}: {done} trials already done (--overwrite starts over)")
    where = f"{os.environ.get('KERASTUNER_ORACLE_IP')}:{os.environ.get('KERASTUNER_ORACLE_PORT')}"
    if role == "chief":
        log(f"chief: serving the {cfg.tuner} oracle on {where} until every worker is done")
    elif role == "worker":
        log(f"worker {os.environ['KERASTUNER_TUNER_ID']}: running trials from the chief at {where}")
    log(f"{cfg.tuner} search into {cfg.project_dir}")
    if cfg.tensorboard and role != "chief":  # the chief trains nothing
        log(f"TensorBoard logs: {cfg.tensorboard_dir} (tensorboard --logdir {cfg.tensorboard})")


def _search(tuner, data, cfg: SearchConfig, verbose: int | str = "auto") -> None:
    """tuner.search without the warnings a user can do nothing about; CommandFailed after too many failures."""
    from sklearn.exceptions import ConvergenceWarning

    from study.tuners import TensorBoard

    # Each worker of a distributed search passes its own: with a shared filesystem, every trial lands in one folder.
    callbacks = [TensorBoard(cfg.tensorboard)] if cfg.tensorboard else []
    try:
        with warnings.catch_warnings():
            # Keras Tuner's Gaussian process on a handful of trials often ends at a length-scale
            # bound: scikit-learn warns after every Bayesian trial, and there is nothing to act on.
            warnings.filterwarnings("ignore", category=ConvergenceWarning, module=r"sklearn\.gaussian_process")
            # Hyperband's next round loads the weights of the last one into a model whose optimizer
            # is not built yet: Keras warns on every such trial that the optimizer state restarts
            # (as it does in Keras Tuner; README, "Cheaper searches").
            warnings.filterwarnings("ignore", message=r"Skipping variable loading for optimizer")
            tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), callbacks=callbacks,
                         verbose=verbose)
    except RuntimeError as e:
        if "consecutive failures" not in str(e):
            raise
        trials = cfg.project_dir / "trials.csv"
        reason = str(e).splitlines()[0]
        raise cli.CommandFailed(1, f"search stopped: {reason}; see the error column of {trials}") from None


def settings_text(cfg: SearchConfig) -> str:
    """The settings as a short block for the console (every one: config.json in the project folder)."""
    from study.formats import data_text, epochs_text

    trials = ("every point of the grid" if cfg.tuner == "grid" and cfg.max_trials is None
              else f"at most {cfg.max_trials} trials" if cfg.max_trials is not None else "the tuner's default trials")
    stopping = f"early stopping after {cfg.early_stopping} epochs without progress" if cfg.early_stopping else \
        "no early stopping"
    space = "; ".join(f"{name} {'/'.join(str(v) for v in values)}" for name, values in cfg.space.values().items())
    return "\n".join([
        f"search {cfg.tuner} into {cfg.project_dir} ({trials}, seed {cfg.seed}; every setting: config.json there)",
        f"  data: {data_text(cfg.data)}",
        f"  training: {epochs_text(cfg.epochs)}, batch {cfg.batch_size}, {stopping}, {cfg.backend}",
        f"  space: {space}",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    child = locks.HELD_BY_PARENT in os.environ  # started by a --parallel search, as its chief or a worker
    if child:
        parallel.die_with_parent()
        # The command stops its children with SIGINT (each saves what it can). Started in the background
        # (`cmd &` in a script), it ignores SIGINT, and so would they: they take it whatever they inherit.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if not locks.held_by_parent():  # the command died before this process could follow it
            return 1

    def body() -> None:
        cfg = parse_config(argv)
        print(settings_text(cfg), flush=True)
        run(cfg, log=lambda msg: print(msg, flush=True), command=shlex.join([*PROG.split(), *argv]))

    # A child's Ctrl-C is the command's to announce, once.
    return cli.command(PROG, body, None if child else "rerun the same command to resume (completed trials are kept)")


if __name__ == "__main__":
    raise SystemExit(main())
