"""The ablation: which of the changes from a source configuration to a target carries the gain, on fresh paired seeds.

The components are the hyperparameters that differ (a `--group` moves several as one). Two views, from
real retrainings that share their seeds, the report's confirmation seeds first (no search and no race
used them, and the report's saved runs of the source and the target there are reused):
- one at a time, both ways: the source plus each component, the target minus each; their paired test
  differences are the confirmatory ones (Holm over the components), and a component's interaction is its
  gain when added to the source minus its loss when removed from the target;
- the path (Fawcett & Hoos 2016): from the source, each step takes the remaining change that helps most on
  validation, its candidates raced (`study.racing`, the best of them with every seed); its test numbers are
  read after it was chosen and are descriptive.
Every decision is a function of the saved runs: a rerun after a crash makes the same ones.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from study import racing, stats
from study.config import TRAINING_HYPERPARAMETERS, ReportConfig, StudyError, config_key
from study.metrics import every_value
from study.recipe import canonical
from study.records import Run, RunStore

ABLATION_FOLDER = "ablation"  # inside the report folder, by default


@dataclass(frozen=True)
class AblationConfig:
    """Everything `python -m study.ablate` needs; saved as config.json in the ablation folder."""

    report: str  # the report folder whose baseline, recommendation, data and training settings it reads
    output: str  # the ablation folder (default: <report>/ablation)
    seeds: int = 5  # paired seeds of every configuration, from the report's confirmation seeds on
    source: dict[str, Any] = field(default_factory=dict)  # changes to the report's baseline ({}: the baseline)
    target: dict[str, Any] | None = None  # changes to the report's baseline; None: the report's recommendation
    groups: tuple[tuple[str, ...], ...] = ()  # hyperparameters that move together, as one component
    min_seeds: int = 2  # the path's candidates race from this many seeds on (>= seeds: no racing)
    parallel: int | None = None  # retrainings side by side (study.retrain.run_jobs)
    scheduler: str | None = None  # a Dask scheduler whose workers train (study.cluster)
    threads: int | None = None  # TensorFlow's threads in every retraining (ReportConfig.threads)

    _WHAT = ("report", "seeds", "source", "target", "groups")  # what makes an ablation folder's results this one's

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differences(self, old: dict[str, Any]) -> list[str]:
        mine = json.loads(json.dumps(self.to_dict()))
        return [k for k in self._WHAT if k in old and mine[k] != old[k]]


@dataclass(frozen=True)
class Plan:
    """What the ablation compares: complete source and target, the components, the seeds, the report's settings."""

    report: ReportConfig
    source: dict[str, Any]  # every value it trains with
    target: dict[str, Any]
    components: dict[str, tuple[str, ...]]  # name: the hyperparameters it changes
    seeds: tuple[int, ...]
    names: dict[str, str]  # "source"/"target": the report's arm it is, where it is one
    min_seeds: int = 2  # the path's candidates race from this many seeds on

    def config(self, values: dict[str, Any]) -> dict[str, Any]:
        """A configuration as its runs are keyed: without training values a configuration naming none trains with."""
        return canonical(values, self.report.batch_size)

    def moved(self, start: dict[str, Any], component: str, towards: dict[str, Any]) -> dict[str, Any]:
        """`start` with `component`'s hyperparameters set as in `towards`."""
        return {**start, **{name: towards[name] for name in self.components[component]}}


def read_report(folder: Path) -> tuple[ReportConfig, dict[str, Any]]:
    """The report's configuration and metrics; StudyError if `folder` holds no rendered report."""
    try:
        cfg = ReportConfig.from_dict(json.loads((folder / "config.json").read_text()))
        metrics = json.loads((folder / "metrics.json").read_text())
    except FileNotFoundError:
        raise StudyError(f"--report {folder}: no report there (no config.json and metrics.json); run "
                         "python -m study.report first") from None
    except (OSError, ValueError, TypeError) as e:
        raise StudyError(f"--report {folder}: unreadable ({type(e).__name__}: {e})") from None
    return cfg, metrics


def plan(cfg: AblationConfig) -> Plan:
    """Source, target, components and seeds from the report and the flags; StudyError (one line) for bad input."""
    from study.values import validate_values

    report, metrics = read_report(Path(cfg.report))
    if cfg.seeds < 2:
        raise StudyError(f"--seeds must be >= 2 (paired intervals over seeds), got {cfg.seeds}")
    allowed = list(dict.fromkeys([*metrics["arms"]["baseline"]["hyperparameters"], *TRAINING_HYPERPARAMETERS]))
    for flag, values in (("--source", cfg.source), ("--target", cfg.target or {})):
        validate_values(values, allowed, flag)
    baseline = every_value(metrics["arms"]["baseline"]["hyperparameters"], report.batch_size)
    recommended = metrics["recommendation"]["name"]
    if cfg.target is None and recommended == "baseline":
        raise StudyError(f"--report {cfg.report} keeps the baseline: nothing to ablate towards; name one with "
                         "--target NAME=VALUE,...")
    source = every_value({**baseline, **cfg.source}, report.batch_size)
    target = every_value({**baseline, **cfg.target} if cfg.target is not None else
                         metrics["arms"][recommended]["hyperparameters"], report.batch_size)
    names = {"source": "baseline" if not cfg.source else "", "target": "" if cfg.target is not None else recommended}
    return Plan(report, source, target, components(source, target, cfg.groups), _seeds(report, cfg.seeds), names,
                cfg.min_seeds)


def components(source: dict[str, Any], target: dict[str, Any], groups: tuple[tuple[str, ...], ...]) -> dict[str, tuple]:
    """{component: its hyperparameters}: each hyperparameter that differs, a group's together, in the target's order."""
    differ = [name for name in target if source.get(name) != target[name]]
    if not differ:
        raise StudyError("the source and the target are the same configuration: nothing to ablate")
    grouped: dict[str, str] = {}
    for group in groups:
        for name in group:
            if name in grouped:  # in another group, or twice in this one
                raise StudyError(f"--group names {name} twice: each hyperparameter moves in one component")
            if name not in target:
                raise StudyError(f"--group {','.join(group)}: no hyperparameter named {name} (choose from "
                                 f"{', '.join(differ)})")
            if name not in differ:
                raise StudyError(f"--group {','.join(group)}: {name} is the same in the source and the target")
            grouped[name] = "+".join(group)
    out: dict[str, tuple[str, ...]] = {}
    for name in differ:
        out.setdefault(grouped.get(name, name), ())
        out[grouped.get(name, name)] += (name,)
    return out


def _seeds(report: ReportConfig, k: int) -> tuple[int, ...]:
    """The report's confirmation seeds, then the next ones: none a search's or the race's."""
    first = report.seed + report.seeds
    searched = {d.get("seed") for d in report.searches.values()}
    seeds = tuple(range(first, first + k))
    clash = sorted(s for s in seeds if s in searched)
    if clash:
        raise StudyError(f"the ablation's seeds {seeds[0]}-{seeds[-1]} include seed {clash[0]}, which a search trained "
                         "every trial with: report with a --seed past it first")
    return seeds


def one_at_a_time(p: Plan) -> dict[str, dict[str, Any]]:
    """{label: configuration}: "source", "target", "+c" (the source plus c) and "-c" (the target less c)."""
    arms = {"source": p.config(p.source), "target": p.config(p.target)}
    for c in p.components:
        arms[f"+{c}"] = p.config(p.moved(p.source, c, p.target))
        arms[f"-{c}"] = p.config(p.moved(p.target, c, p.source))
    return arms


def missing(store: RunStore, configs: dict[str, dict[str, Any]], seeds, n_test: int | None = None) -> list[tuple]:
    """(configuration, seed) of every run not saved yet, each once."""
    out = {}
    for hp in configs.values():
        for seed in seeds:
            if store.load(hp, seed, n_test) is None:
                out[config_key([hp, seed])] = (hp, seed)
    return list(out.values())


@dataclass(frozen=True)
class PathState:
    """Where the path stands: its steps so far (component, configuration), and the runs its next decision needs."""

    steps: list[tuple[str, dict[str, Any]]]
    todo: list[tuple[dict[str, Any], int]]
    raced: list[tuple[racing.Race, dict[str, dict[str, Any]]]]  # per step, its race and candidates (for the count)


def path(p: Plan, store: RunStore, n_test: int | None = None) -> PathState:
    """Replay the greedy path on the saved runs up to the first decision that lacks a run."""
    current, remaining, steps, raced = p.source, list(p.components), [], []
    while remaining:
        arms = {c: p.config(p.moved(current, c, p.target)) for c in remaining}
        state = racing.race(arms, lambda hp, s: store.load(hp, s, n_test), p.seeds, p.min_seeds, baseline=None)
        raced.append((state, arms))
        if state.todo:
            return PathState(steps, state.todo, raced)
        val = {c: float(np.mean([store.load(arms[c], s).final_val_accuracy for s in p.seeds])) for c in arms
               if c not in state.dropped}
        chosen = stats.challenger(val)
        steps.append((chosen, arms[chosen]))
        current = p.moved(current, chosen, p.target)
        remaining.remove(chosen)
    return PathState(steps, [], raced)


def runs_of(store: RunStore, hp: dict[str, Any], seeds) -> list[Run]:
    return [store.load(hp, s) for s in seeds]


# --- the numbers -------------------------------------------------------------------------------------

def difference(base: list[Run], other: list[Run]) -> stats.Comparison:
    """`other` minus `base` in test accuracy, paired by seed (a paired t-test; `stats.compare_paired_seeds`)."""
    return stats.compare_paired_seeds({r.seed: r.test_accuracy for r in base}, {r.seed: r.test_accuracy for r in other})


def interaction(p: Plan, runs: dict[str, list[Run]], c: str) -> stats.Comparison:
    """c's gain when added to the source minus its loss when removed from the target, paired by seed: per seed
    ((source + c) - source) - (target - (target - c)); 0 when c helps alike on both sides."""
    def by_seed(label: str) -> dict[int, float]:
        return {r.seed: r.test_accuracy for r in runs[label]}

    added = {s: by_seed(f"+{c}")[s] - by_seed("source")[s] for s in p.seeds}
    lost = {s: by_seed("target")[s] - by_seed(f"-{c}")[s] for s in p.seeds}
    return stats.compare_paired_seeds(lost, added)


def diff_json(c: stats.Comparison) -> dict[str, Any]:
    """A difference as ablation.json holds it: fractions of test accuracy, its 95% interval, its p-values."""
    return {"mean": c.diff, "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value, "p_holm": c.p_holm,
            "test": c.test, "better": c.better, "pairs": c.pairs}


def accuracies(rs: list[Run]) -> dict[str, Any]:
    val, test = [r.final_val_accuracy for r in rs], [r.test_accuracy for r in rs]
    return {"seeds": [r.seed for r in rs], "val_accuracies": val, "test_accuracies": test,
            "val_accuracy": float(np.mean(val)), "val_accuracy_std": float(np.std(val, ddof=1)),
            "test_accuracy": float(np.mean(test)), "test_accuracy_std": float(np.std(test, ddof=1)),
            "seconds": float(np.mean([r.seconds for r in rs]))}


def analyse(p: Plan, store: RunStore, state: PathState) -> dict[str, Any]:
    """Every number of the ablation by name (ablation.json), from its saved runs; the path's decisions made."""
    configs = one_at_a_time(p)
    runs = {label: runs_of(store, hp, p.seeds) for label, hp in configs.items()}
    total = difference(runs["source"], runs["target"])
    added = stats.holm({c: difference(runs["source"], runs[f"+{c}"]) for c in p.components})
    removed = stats.holm({c: difference(runs["target"], runs[f"-{c}"]) for c in p.components})
    interactions = stats.holm({c: interaction(p, runs, c) for c in p.components})
    beyond = stats.beats_baseline(total)
    steps, previous = [], runs["source"]
    for c, hp in state.steps:
        here = runs_of(store, hp, p.seeds)
        step = difference(previous, here)
        steps.append({"component": c, "hyperparameters": every_value(hp, p.report.batch_size), **accuracies(here),
                      "diff_vs_previous": diff_json(step),
                      "diff_vs_source": diff_json(difference(runs["source"], here)),
                      "share_of_total": step.diff / total.diff if beyond else None})
        previous = here
    return {
        "source": p.source, "target": p.target, "source_arm": p.names["source"] or None,
        "target_arm": p.names["target"] or None,
        "components": {c: {name: [p.source[name], p.target[name]] for name in names}
                       for c, names in p.components.items()},
        "seeds": list(p.seeds), "source_runs": accuracies(runs["source"]), "target_runs": accuracies(runs["target"]),
        "total": {**diff_json(total), "beyond_noise": beyond},
        "one_at_a_time": {
            "added": [{"component": c, "hyperparameters": every_value(configs[f"+{c}"], p.report.batch_size),
                       **accuracies(runs[f"+{c}"]), "diff_vs_source": diff_json(added[c]),
                       "interaction": diff_json(interactions[c])} for c in p.components],
            "removed": [{"component": c, "hyperparameters": every_value(configs[f"-{c}"], p.report.batch_size),
                         **accuracies(runs[f"-{c}"]), "diff_vs_target": diff_json(removed[c]),
                         "interaction": diff_json(interactions[c])} for c in p.components],
        },
        "path": steps,
        "compute": compute(p, store, state, configs),
    }


def compute(p: Plan, store: RunStore, state: PathState, configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Retrainings: the one-at-a-time view's, and the path's new ones with racing against every candidate's K."""
    trained = {config_key(hp) for hp in configs.values()}
    raced = fixed = 0
    for race, candidates in state.raced:
        for name, arm in race.arms.items():
            if config_key(candidates[name]) not in trained:
                raced, fixed = raced + len(arm.seeds), fixed + len(p.seeds)
    every = [store.load(hp, s) for hp in configs.values() for s in p.seeds]
    every += [store.load(hp, s) for _, candidates in state.raced for hp in candidates.values() for s in p.seeds]
    own = [r for r in {config_key([r.hyperparameters, r.seed]): r for r in every if r}.values()]
    return {"configurations": len({config_key(r.hyperparameters) for r in own}),
            "retrainings": len(own), "reused": sum(bool(r.reused_from) for r in own),
            "training_seconds": sum(r.seconds for r in own if not r.reused_from),
            "path_new_retrainings": raced, "path_new_retrainings_without_racing": fixed,
            "machines": sorted({r.machine for r in own if r.machine})}

