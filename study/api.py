"""The Python API: a `Study` of data on disk or in memory, whose methods are the commands, with keywords for flags.

`s.search(tuner="grid", epochs=2)` is `python -m study.search --tuner grid --epochs 2` with the study's
data, model, directory and output: the same parser reads the keywords, the same functions run, the same
files are written, and bad input raises `StudyError` with the one line the command prints before exit 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
from pathlib import Path
from typing import Any

import pandas as pd

from study import cluster, progress, report_setup
from study.config import DataConfig, StudyError


def load_data(path: str | Path | None = None, *, subset: int | None = None, image_size: tuple[int, int] = (32, 32),
              channels: int = 3, split_seed: int = DataConfig.split_seed) -> DataConfig:
    """The data `--data-dir PATH` (and the other data flags) describe: image folders or an archive of them; None:
    CIFAR-10 through keras.datasets. Nothing is decoded until a search or a report needs the images."""
    return DataConfig(data_dir=None if path is None else str(path), subset=subset, image_size=tuple(image_size),
                      channels=channels, split_seed=split_seed)


def _argv(parser: argparse.ArgumentParser, flags: dict[str, Any], what: str) -> list[str]:
    """Keywords as the command line `parser` reads: dest names, lists as commas, True as a bare flag."""
    actions = {a.dest: a for a in parser._actions if a.option_strings}  # argparse keeps no public list of them
    argv = []
    for name, value in flags.items():
        action = actions.get(name)
        if action is None or name == "help":
            known = ", ".join(sorted(n for n in actions if n != "help"))
            raise StudyError(f"{what}() got an unknown keyword {name!r} (it takes: {known})")
        if value is None or value is False:
            continue
        option = action.option_strings[-1]
        if value is True and action.nargs == 0:
            argv.append(option)
        elif isinstance(action, argparse._AppendAction):
            items = [value] if isinstance(value, str) or not isinstance(value, (list, tuple)) else value
            for item in items:
                argv += [option, ",".join(map(str, item)) if isinstance(item, (list, tuple)) else str(item)]
        elif isinstance(value, dict):
            argv += [option, ",".join(f"{k}={v}" for k, v in value.items())]
        elif isinstance(value, (list, tuple)):
            argv += [option, "x".join(map(str, value)) if name == "image_size" else
                     ",".join(map(str, value)) or "none"]
        else:
            argv += [option, str(value)]
    return argv


_DATA_KEYWORDS = ("data_dir", "subset", "image_size", "channels", "split_seed")


class Study:
    """A study of one data set and one model: searches into `directory`, the report into `output`.

    `model`: None (the notebook's CNN), a function `build(hp, input_shape, num_classes)`, a
    `keras_tuner.HyperModel` or "MODULE:FUNCTION"; `baseline`: {name: value}, the recipe every arm is compared
    with (the report's `--baseline`).
    """

    def __init__(self, data: DataConfig | str | Path | None = None, *, directory: str | Path = "tuner_results",
                 output: str | Path = "reports", model=None, baseline: dict[str, Any] | None = None):
        from study.model import as_model_function

        self.data = data if isinstance(data, DataConfig) else load_data(data)
        self.directory, self.output = str(directory), str(output)
        self.model = as_model_function(model)
        self.baseline = dict(baseline or {})

    def __repr__(self) -> str:
        return (f"Study(data={self.data.data_dir or 'CIFAR-10'!r}, model={self.model.name!r}, "
                f"directory={self.directory!r}, output={self.output!r})")

    def search(self, **flags) -> SearchResult:
        """Run (or resume) a search: any flag of `python -m study.search` as a keyword (`tuner="bayesian"`,
        `max_trials=10`, `learning_rates=[1e-3, 1e-2]`); returns its trials."""
        from study import search as search_command

        _no_model(flags)
        flags = {"directory": self.directory, **flags}
        argv = _argv(search_command.build_parser(), _without(flags, _DATA_KEYWORDS, "search"), "search")
        cfg = search_command.parse_config(argv)  # every flag's own check, as on the command line
        cfg = dataclasses.replace(cfg, data=_data(self.data, flags), model=self.model.identity)
        cfg.validate()
        log, verbose = progress.live_log()
        command = shlex.join(["study.Study.search", *argv])
        print(f"search: {cfg.project_dir}", flush=True)
        search_command.run(cfg, log=log, command=command, model=self.model, verbose=verbose)
        return SearchResult(cfg)

    def report(self, **flags) -> Report:
        """Run (or resume) the report on the searches in `directory`: any flag of `python -m study.report` as a
        keyword (`epochs=2`, `seeds=3`, `confirm_seeds=2`); returns its comparison, recommendation and figures."""
        from study import locks
        from study import report as report_command

        _no_model(flags)
        flags = {"directory": self.directory, "output": self.output, **flags}
        if self.baseline and "baseline" not in flags:
            flags["baseline"] = self.baseline
        argv = _argv(report_command.build_parser(), _without(flags, _DATA_KEYWORDS, "report"), "report")
        args = report_command.build_parser().parse_args(argv)
        searches = report_command.load_searches(args.directory)
        cfg, warnings = report_command.resolve_config(args, searches)
        cfg = dataclasses.replace(cfg, data=_data(self.data, flags), data_from="Study", model=self.model.identity)
        if cfg.model is None:
            report_setup.check_image_size(cfg.data)
        for s in searches:
            if s.config.model != cfg.model:
                raise StudyError(f"search {s.name} in {cfg.directory} studied another model than {self.model.name}")
        report_command.check_output(cfg, args.overwrite)
        log, verbose = progress.live_log()
        figures: dict = {}
        with cluster.session(cfg), locks.hold(Path(cfg.output), "study.Study.report", what="report"):
            report_command.run(cfg, searches, warnings, log=log, verbose=verbose,
                               command=shlex.join(["study.Study.report", *argv]),
                               model=self.model if self.model.spec else None, figures=figures)
        return Report(Path(cfg.output), figures)


    def ablate(self, **flags) -> Ablation:
        """Which of the report's changes carries its gain: any flag of `python -m study.ablate` as a keyword
        (`target={"batch_size": 32}`, `group=[("dropout_1", "dropout_2", "dropout_3")]`, `seeds=5`); the report is
        the study's own `output` unless `report=` names another."""
        from study import ablate as ablate_command
        from study import locks

        _no_model(flags)
        flags = {"report": self.output, **flags}
        argv = _argv(ablate_command.build_parser(), flags, "ablate")
        args = ablate_command.build_parser().parse_args(argv)
        cfg = ablate_command.parse_config(args)
        from study import ablation

        ablation.plan(cfg)
        ablate_command.check_output(cfg, args.overwrite)
        log, verbose = progress.live_log()
        figures: dict = {}
        connected = ablate_command.training_settings(cfg, ablation.plan(cfg))
        with cluster.session(connected), locks.hold(Path(cfg.output), "study.Study.ablate", what="ablation"):
            ablate_command.run(cfg, log=log, verbose=verbose, command=shlex.join(["study.Study.ablate", *argv]),
                               model=self.model if self.model.spec else None, figures=figures)
        return Ablation(Path(cfg.output), figures)


def _no_model(flags: dict[str, Any]) -> None:
    if "model" in flags:
        raise StudyError("model= belongs to the study: study.Study(data, model=...), one model per study")


def _without(flags: dict[str, Any], names: tuple[str, ...], what: str) -> dict[str, Any]:
    """`flags` less the data keywords, which come from the study's data (a path's can be changed per call)."""
    return {k: v for k, v in flags.items() if k not in names}


def _data(data: DataConfig, flags: dict[str, Any]) -> DataConfig:
    """The study's data, changed by any data keyword of this call (`subset=500`)."""
    changes = {k: flags[k] for k in _DATA_KEYWORDS if k in flags and flags[k] is not None}
    if "image_size" in changes:
        changes["image_size"] = tuple(changes["image_size"])
    return dataclasses.replace(data, **changes)


class SearchResult:
    """A search's project: its configuration and its trials, one row a trial (`study.results.trials_frame`)."""

    def __init__(self, cfg):
        self.config, self.directory = cfg, cfg.project_dir

    @property
    def trials(self) -> pd.DataFrame:
        from study import results

        return results.trials_frame(self.directory)

    @property
    def best(self) -> dict[str, Any] | None:
        """The best completed trial's hyperparameters, by validation accuracy; None if none completed."""
        from study import results

        trials = self.trials
        best = results.best_trial(trials) if len(trials) else None
        return None if best is None else results.trial_hyperparameters(best, trials)

    def _repr_html_(self) -> str:
        return f"<p><b>{self.config.tuner} search</b> in <code>{self.directory}</code></p>" + self.trials.to_html(
            index=False, float_format=lambda x: f"{x:.4f}")


class Report:
    """A rendered report: its summary, its comparison of every arm, its recommendation, and its figures."""

    def __init__(self, folder: Path, figures: dict | None = None):
        self.folder, self.figures = Path(folder), dict(figures or {})
        self.metrics = json.loads((self.folder / "metrics.json").read_text())

    @property
    def summary(self) -> str:
        return self.metrics["summary"]

    @property
    def comparison(self) -> pd.DataFrame:
        """One row an arm, the baseline first: as in metrics.json and tables/final_comparison.csv."""
        return pd.DataFrame(self.metrics["comparison"])

    @property
    def recommendation(self) -> dict[str, Any]:
        return self.metrics["recommendation"]

    def _repr_html_(self) -> str:
        import html
        import re

        text = html.escape(self.summary)
        text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", re.sub(r"`(.+?)`", r"<code>\1</code>", text))
        shown = pd.read_csv(self.folder / "tables" / "final_comparison.csv")
        return (f"<p>{text}</p><p>Report: <code>{self.folder / 'report.md'}</code></p>"
                + shown.to_html(index=False, float_format=lambda x: f"{x:.4f}", na_rep=""))


class Ablation:
    """A rendered ablation: its answer, its two views as DataFrames, and its figures."""

    def __init__(self, folder: Path, figures: dict | None = None):
        self.folder, self.figures = Path(folder), dict(figures or {})
        self.numbers = json.loads((self.folder / "ablation.json").read_text())

    @property
    def one_at_a_time(self) -> pd.DataFrame:
        return pd.read_csv(self.folder / "tables" / "one_at_a_time.csv")

    @property
    def path(self) -> pd.DataFrame:
        return pd.read_csv(self.folder / "tables" / "path.csv")

    @property
    def answer(self) -> str:
        from study import wording

        return wording.ablation_answer(self.numbers)

    def _repr_html_(self) -> str:
        import html

        return (f"<p>{html.escape(self.answer)}</p>" + self.one_at_a_time.to_html(index=False, na_rep="")
                + self.path.to_html(index=False, na_rep=""))
