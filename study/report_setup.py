"""The report's configuration from its flags and its searches, and the refusals made before any image is decoded."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
from pathlib import Path

from study import runtime
from study.config import OPTIMIZERS, DataConfig, ReportConfig, StudyError, config_key, model_identity
from study.records import MODELS_FOLDER, RUNS_FOLDER, Search, find_searches
from study.values import parse_assignments, validate_values

DEFAULT_DIRECTORY = "tuner_results"
_DATA_FLAGS = ("data_dir", "subset", "image_size", "channels", "split_seed")


def load_searches(directory: str | None) -> list[Search]:
    """The searches to report on; a --directory given explicitly must exist (a typo must not cost an hour)."""
    if directory is not None and not Path(directory).exists():
        raise StudyError(f"--directory {directory} does not exist")
    return find_searches(Path(directory or DEFAULT_DIRECTORY))


def resolve_config(args: argparse.Namespace, searches: list[Search]) -> tuple[ReportConfig, list[str]]:
    """The report's configuration and warnings (searches run on different data)."""
    if args.scheduler and args.parallel:
        raise StudyError("--parallel and --scheduler: the cluster's workers decide how many retrain at once")
    for name in ("epochs", "seeds", "batch_size", "subset", "parallel", "candidates", "threads"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise StudyError(f"--{name.replace('_', '-')} must be > 0, got {value}")
    if args.min_seeds < 2:
        raise StudyError(f"--min-seeds must be >= 2 (a paired comparison needs two seeds), got {args.min_seeds}")
    if args.seed is not None and args.seed < 0:
        raise StudyError(f"--seed must be >= 0, got {args.seed}")
    if args.confirm_seeds < 0:
        raise StudyError(f"--confirm-seeds must be >= 0, got {args.confirm_seeds}")
    for other in args.reuse:
        if not (Path(other) / RUNS_FOLDER).is_dir():
            raise StudyError(f"--reuse {other}: no report folder there (no {RUNS_FOLDER}/ inside)")
    warnings = []
    distinct = {config_key(dataclasses.asdict(s.config.data)): s.name for s in searches}
    if len(distinct) > 1:
        warnings.append(
            f"the searches used different data ({', '.join(s.name for s in searches)}): their validation "
            "accuracies are not comparable with each other; the retrainings below all use the same data"
        )
    data, data_from = _data_config(args, searches)
    seed = first_seed(args.seed, searches, args.seeds, args.confirm_seeds)
    baseline = parse_assignments(args.baseline) if args.baseline else {}
    compare = _optimizers(args.compare_optimizers)
    model = model_identity(args.model) if args.model else (searches[0].config.model if searches else None)
    for s in searches:
        if s.config.model != model:
            raise StudyError(f"search {s.name} studied {_model_name(s.config.model)}, the report "
                             f"{_model_name(model)}: report on searches of one model (--directory, --model)")
    cfg = ReportConfig(
        directory=args.directory or DEFAULT_DIRECTORY, output=args.output, epochs=args.epochs, seeds=args.seeds,
        model=model, seed=seed, batch_size=args.batch_size, data=data, data_from=data_from,
        final_fit=args.final_fit, backend=runtime.keras_backend(), parallel=args.parallel,
        candidates=args.candidates, min_seeds=args.min_seeds, confirm_seeds=args.confirm_seeds,
        reuse=tuple(args.reuse), searches={s.name: s.config.identity() for s in searches},
        baseline=baseline, compare_optimizers=compare, scheduler=args.scheduler,
        threads=args.threads or (os.cpu_count() if args.scheduler else None),
    )
    if cfg.model is None:  # a --model's own names and sizes are checked once it is loaded (report.run)
        validate_values(baseline)
        check_image_size(cfg.data)
    elsewhere = sorted({s.name for s in searches if s.config.backend != cfg.backend})
    if elsewhere:
        warnings.append(f"{', '.join(elsewhere)} searched on another Keras backend than this report's {cfg.backend}: "
                        "their validation accuracies and the retrainings below are computed differently")
    return cfg, warnings


def _optimizers(text: str | None) -> tuple[str, ...] | None:
    """--compare-optimizers: a list of optimizers, or none."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return ()
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in OPTIMIZERS]
    if unknown or not names:
        raise StudyError(f"--compare-optimizers: unknown optimizer {unknown[0] if unknown else text!r}; choose from "
                         f"{', '.join(OPTIMIZERS)}, or none")
    return names


def first_seed(seed: int | None, searches: list[Search], seeds: int, confirm_seeds: int) -> int:
    """The race's first seed: `seed`, or one past the largest any search trained with; StudyError if a race or
    confirmation seed would be a search's (every trial of a search trains with its seed: a retraining at that
    seed repeats a trial, the very run that made the configuration look good)."""
    searched = {s.config.seed: s.name for s in sorted(searches, key=lambda s: s.name, reverse=True)}
    if seed is None:
        return max(searched, default=0) + 1
    used = range(seed, seed + seeds + confirm_seeds)
    clash = sorted(s for s in searched if s in used)
    if clash:
        raise StudyError(f"--seed {seed}: the race and confirmation seeds {used.start}-{used.stop - 1} include seed "
                         f"{clash[0]}, which search {searched[clash[0]]} trained every trial with; use --seed "
                         f"{max(searched) + 1} (the default) or above")
    return seed


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


# --- training and the answer -------------------------------------------------------------------------

def settings_text(cfg: ReportConfig, searches: list[Search]) -> str:
    """The settings as a short block for the console (every one: config.json in the report)."""
    from study.formats import data_text, epochs_text, seeds_text

    data = data_text(cfg.data)
    where = f" (as recorded by {cfg.data_from}; data flags change it)" if cfg.data_from.startswith("search") else ""
    racing_from = f", racing from {cfg.min_seeds} seeds" if cfg.min_seeds < cfg.seeds else ", every arm every seed"
    confirming = (f"; then the challenger and the baseline on {seeds_text(cfg.confirmation_seeds)}" if cfg.confirm_seeds
                  else "; no confirmation (--confirm-seeds 0: exploratory)")
    return "\n".join([
        f"report into {cfg.output}, from {', '.join(s.name for s in searches) or 'no search'} in {cfg.directory}",
        f"  data: {data}{where}",
        f"  training: {epochs_text(cfg.epochs)}, batch {cfg.batch_size} unless a configuration sets its own, "
        f"{cfg.backend}" + (f", {cfg.parallel} side by side" if cfg.parallel else ""),
        f"  race: {seeds_text(cfg.race_seeds)}{racing_from}{confirming}",
        *([f"  reusing the saved runs of {', '.join(cfg.reuse)}"] if cfg.reuse else []),
    ])


def check_image_size(data: DataConfig) -> None:
    """The notebook's CNN (two valid 3x3 convolutions, each before a 2x2 pooling) leaves nothing below 10x10."""
    if min(data.image_size) < 10:
        raise StudyError("the images must be at least 10x10 for the notebook's CNN (two 3x3 conv, 2x2 pool blocks), "
                         f"got {'x'.join(map(str, data.image_size))}")
