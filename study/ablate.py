"""`python -m study.ablate`: which of the changes from a report's baseline to its recommendation carries the gain.

Reads the report's record (data, epochs, model, seeds), retrains the one-at-a-time configurations and the
greedy path on fresh paired seeds, and writes `<output>/ablation.md`, `ablation.json` and its figures. Every
retraining is saved as it ends: a rerun trains only what is missing; the folder is held by one process.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from study import ablation, cli, cluster, locks, retrain, runtime, storage
from study import jobs as jobs_lib
from study.ablation import ABLATION_FOLDER, AblationConfig
from study.config import ReportConfig, StudyError, config_key
from study.records import RUNS_FOLDER, RunStore
from study.values import parse_assignments

PROG = "python -m study.ablate"


def build_parser() -> argparse.ArgumentParser:
    p = cli.Parser(prog=PROG, description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("--report", required=True, metavar="DIR", help="the report folder (python -m study.report's "
                   "--output) whose baseline, recommendation, data and training settings the ablation takes")
    p.add_argument("--output", metavar="DIR", help=f"the ablation folder (default: DIR/{ABLATION_FOLDER})")
    p.add_argument("--source", metavar="NAME=VALUE,...", help="where the path starts: changes to the report's "
                   "baseline (default: the baseline)")
    p.add_argument("--target", metavar="NAME=VALUE,...", help="where it ends: changes to the report's baseline, "
                   "e.g. batch_size=32,augmentation=flip (default: the report's recommendation; required when the "
                   "report keeps the baseline)")
    p.add_argument("--group", action="append", default=[], metavar="NAME,NAME,...", help="hyperparameters that move "
                   "together, as one component (repeatable), e.g. dropout_1,dropout_2,dropout_3")
    p.add_argument("--seeds", type=int, default=AblationConfig.seeds, metavar="K", help="paired seeds of every "
                   f"configuration, from the report's confirmation seeds on (default: {AblationConfig.seeds})")
    p.add_argument("--min-seeds", type=int, default=AblationConfig.min_seeds, metavar="M", help="the path's "
                   "candidates race on validation from M seeds on; the one a step takes has all K "
                   f"(default: {AblationConfig.min_seeds}; M = K: no racing)")
    p.add_argument("--parallel", type=int, metavar="K", help="retrain K configurations side by side (as the report)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="train on the workers of the Dask scheduler at ADDRESS "
                   "(docs/distributed.md)")
    p.add_argument("--threads", type=int, metavar="N", help="TensorFlow's threads in every retraining (default: "
                   "TensorFlow's; with --scheduler, this machine's cores)")
    p.add_argument("--overwrite", action="store_true", help="delete the ablation in --output and start over")
    return p


def parse_config(args: argparse.Namespace) -> AblationConfig:
    if args.scheduler and args.parallel:
        raise StudyError("--parallel and --scheduler: the cluster's workers decide how many retrain at once")
    if args.threads is not None and args.threads < 1:
        raise StudyError(f"--threads must be >= 1, got {args.threads}")
    for name in ("min_seeds", "parallel"):
        value = getattr(args, name)
        if value is not None and value < (2 if name == "min_seeds" else 1):
            raise StudyError(f"--{name.replace('_', '-')} must be >= {2 if name == 'min_seeds' else 1}, got {value}")
    report = Path(args.report)
    if not report.is_dir():
        raise StudyError(f"--report {report} does not exist")
    groups = tuple(tuple(n.strip() for n in g.split(",") if n.strip()) for g in args.group)
    return AblationConfig(
        report=str(report), output=args.output or str(report / ABLATION_FOLDER), seeds=args.seeds,
        source=parse_assignments(args.source, "--source") if args.source else {},
        target=parse_assignments(args.target, "--target") if args.target else None,
        groups=groups, min_seeds=args.min_seeds, parallel=args.parallel, scheduler=args.scheduler,
        threads=args.threads or (os.cpu_count() if args.scheduler else None),
    )


def check_output(cfg: AblationConfig, overwrite: bool, log=print) -> None:
    """Refuse an output that holds something else, or another ablation (--overwrite deletes it)."""
    out = Path(cfg.output)
    if not out.exists():
        return
    if not out.is_dir():
        raise StudyError(f"--output {out} exists and is not a directory")
    others = {p.name for p in out.iterdir()} - {RUNS_FOLDER, "config.json"}
    if others and not (out / "ablation.md").exists():
        raise StudyError(f"--output {out} holds files that are not an ablation; choose another --output")
    saved = out / "config.json"
    changed = cfg.differences(json.loads(saved.read_text())) if saved.exists() else []
    if overwrite:
        log(f"--overwrite: deleting the ablation and its saved runs in {out}")
        shutil.rmtree(out)
    elif changed:
        raise StudyError(f"{out} holds an ablation of another {', '.join(changed)}; pass --overwrite to start over "
                         "or --output NEW to keep both")


def run(cfg: AblationConfig, log=print, verbose: int | str = 2, command: str = PROG, model=None,
        figures: dict | None = None) -> dict:
    """Train what is missing, then write the ablation; returns its numbers (ablation.json)."""
    from study.data import load_dataset

    p = ablation.plan(cfg)  # every refusal before any image is decoded
    settings = training_settings(cfg, p)
    store = RunStore(Path(cfg.output) / RUNS_FOLDER, settings.settings(settings.backend),
                     (Path(cfg.report) / RUNS_FOLDER,))
    # Saved before any run, so that a rerun of other settings is refused even before the first render.
    Path(cfg.output).mkdir(parents=True, exist_ok=True)
    storage.write_json(Path(cfg.output) / "config.json", cfg.to_dict())
    labels = load_dataset(settings.data, keep_test="encoded", keep_train=False)
    n_test = len(labels.y_test)
    configs = ablation.one_at_a_time(p)
    todo = _todo(p, store, configs, n_test)
    log(f"ablation of {len(p.components)} components ({', '.join(p.components)}) on seeds {p.seeds[0]}-{p.seeds[-1]}: "
        f"{len(configs)} configurations one at a time and the path; {_estimate(p, store, configs, todo)}")
    if todo:
        data = load_dataset(settings.data, keep_test="encoded", keep_train=jobs_lib.trains_here(settings))
        model = model or _model(settings)
        while todo:
            jobs = [retrain.Job((job,)) for job in todo]
            ahead = max(0, _at_most(p, store, configs) - len(todo))  # the path's later steps, at most
            jobs_lib.run_jobs(data, store, jobs, settings, model=model, log=log, verbose=verbose, ahead=ahead)
            todo = _todo(p, store, configs, n_test)
    numbers = ablation.analyse(p, store, ablation.path(p, store, n_test))
    numbers["compute"]["command"] = command  # what re-renders it (tests/test_committed_study.py)
    _write(Path(cfg.output), numbers, cfg, command, _runs(p, store, configs), figures)
    from study.render_ablation import console_text

    log(console_text(numbers))
    log(f"ablation: {Path(cfg.output) / 'ablation.md'}")
    return numbers


def training_settings(cfg: AblationConfig, p: ablation.Plan) -> ReportConfig:
    """The report's settings, trained here with the ablation's own --parallel, --scheduler and --threads."""
    return dataclasses.replace(p.report, parallel=cfg.parallel, scheduler=cfg.scheduler, threads=cfg.threads)


def _todo(p, store: RunStore, configs: dict, n_test: int) -> list:
    """The one-at-a-time view's missing runs, then the path's next decision's."""
    todo = ablation.missing(store, configs, p.seeds, n_test)
    if todo:
        return todo
    return ablation.path(p, store, n_test).todo


def _estimate(p, store: RunStore, configs: dict, todo: list) -> str:
    """"at most 40 retrainings to train, about 2.1 h (the report's runs took 190 s each)" """
    from study.formats import duration_text

    left = _at_most(p, store, configs)
    saved = [r for r in (store.load(hp, s) for hp in configs.values() for s in p.seeds) if r is not None]
    if not todo:
        return "every run is saved: nothing to train"
    if not saved:
        return f"at most {left} retrainings to train"
    mean = sum(r.seconds for r in saved) / len(saved)
    return f"at most {left} retrainings to train, about {duration_text(left * mean)} ({mean:.0f} s a saved run)"


def _at_most(p, store: RunStore, configs: dict) -> int:
    """The retrainings left at most: the one-at-a-time view's missing runs, and every seed of the path's new
    candidates (step k of n has n - k + 1; only steps 2 to n - 2 are not one-at-a-time configurations) less those
    saved; racing may need fewer."""
    n = len(p.components)
    path_new = sum(n - k + 1 for k in range(2, n - 1)) * len(p.seeds)
    known = {config_key(hp) for hp in configs.values()}
    saved = {config_key([hp, s]) for _, candidates in ablation.path(p, store).raced for hp in candidates.values()
             if config_key(hp) not in known for s in p.seeds if store.load(hp, s) is not None}
    return len(ablation.missing(store, configs, p.seeds)) + path_new - len(saved)


def _runs(p, store: RunStore, configs: dict) -> list:
    """(configuration's name, run) for every saved run the ablation used, each once: the table of every retraining."""
    state = ablation.path(p, store)
    named = {**configs, **{f"path {i}: {c}": hp for i, (c, hp) in enumerate(state.steps, 1)}}
    # The candidates a step raced and did not take: every retraining is listed, the raced-out ones too.
    named |= {f"raced at step {i}: {c}": hp for i, (_, candidates) in enumerate(state.raced, 1)
              for c, hp in candidates.items()}
    seen, out = set(), []
    for name, hp in named.items():
        for s in p.seeds:
            run = store.load(hp, s)
            key = config_key([hp, s])
            if run is not None and key not in seen:
                seen.add(key)
                out.append((name, run))
    return out


def _model(cfg):
    with runtime.without_notebook_modules():
        from study import model as model_lib
    return model_lib.load_model_function(cfg.model)


def _write(output: Path, numbers: dict, cfg: AblationConfig, command: str, runs: list, figures: dict | None) -> None:
    """Render into a temporary folder beside `output`, carry the saved runs over, swap it in whole."""
    from study.render_ablation import render

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    try:
        render(tmp, numbers, cfg, command, runs, figures)
        if (output / RUNS_FOLDER).exists():
            shutil.copytree(output / RUNS_FOLDER, tmp / RUNS_FOLDER)
        old = output.with_name(f".{output.name}.old-{os.getpid()}")
        if output.exists():
            os.replace(output, old)
        os.replace(tmp, output)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> None:
        args = build_parser().parse_args(argv)
        cfg = parse_config(args)
        p = ablation.plan(cfg)  # refused in one line before anything is written
        check_output(cfg, args.overwrite)
        command = shlex.join([*PROG.split(), *argv])
        with cluster.session(training_settings(cfg, p)), locks.hold(Path(cfg.output), command, what="ablation"):
            run(cfg, log=lambda message: print(message, flush=True), command=command)

    return cli.command(PROG, body, "finished retrainings are saved: rerun the same command to go on")


if __name__ == "__main__":
    raise SystemExit(main())
