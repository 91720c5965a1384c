"""Racing the report's arms over paired seeds: a clear loser gets no more seeds.

Arms get seeds round by round: every live arm runs seed s before any runs seed s+1. From
`min_seeds` seeds on, an arm is dropped (it gets no more seeds) when its validation accuracy is
worse than the best live arm's (the leader's) beyond the noise, as irace's F-race drops candidates
against the best, paired by seed (here: one linear model whose seed noise is pooled over the arms,
Holm over the arms compared); or when it cannot beat the baseline beyond the noise even with every
seed (`stats.cannot_beat`). The baseline is never dropped, so the report can still test against it.

Every decision is a pure function of the saved runs: a report killed at any point and rerun makes
the same decisions as one that ran through. The race ends early when it has dropped every arm but
the baseline (and arms of its configuration): nothing is left to beat it, so it gets no more seeds.
The statistics are `study.stats`'s; the test set plays no part (the validation split decides).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from study import stats
from study.config import config_key

WORSE = "worse than the leader"  # on validation, beyond the noise: it can be neither the challenger nor better
CANNOT_BEAT = "cannot beat the baseline"  # beyond the noise, even with every seed: more seeds change no answer

Saved = Callable[[dict[str, Any], int], Any]  # (hyperparameters, seed) -> the saved run (study.records.Run) or None


def candidates(searches: Sequence[Any], n: int, taken: Sequence[dict[str, Any]],
               batch_size: int) -> dict[str, dict[str, Any]]:
    """{name: hyperparameters}: the `n` best distinct configurations of all the searches by search validation accuracy.

    A configuration tried several times (Hyperband's rounds) counts at its best; one in `taken` (the
    baseline and optimizer arms, always in) is not a candidate. Names say where each comes from:
    "hyperband best", "hyperband #2" (its search's second best), "grid best = bayesian #3" (found by both).
    """
    found: dict[str, dict[str, Any]] = {}  # configuration: its hyperparameters, best score, names
    for order, s in enumerate(searches):
        ranked = sorted(_best_scores(s, batch_size).items(), key=lambda item: -item[1][0])  # stable: earliest first
        for rank, (key, (score, hp)) in enumerate(ranked, 1):
            entry = found.setdefault(key, {"hp": hp, "score": score, "order": (order, rank), "names": []})
            entry["names"].append(f"{s.name} {'best' if rank == 1 else f'#{rank}'}")
            entry["score"] = max(entry["score"], score)
    taken_keys = {config_key(hp) for hp in taken}
    field = sorted((e for k, e in found.items() if k not in taken_keys), key=lambda e: (-e["score"], e["order"]))
    return {" = ".join(e["names"]): e["hp"] for e in field[:n]}


def search_score(hyperparameters: dict[str, Any], searches: Sequence[Any], batch_size: int) -> float:
    """The best search validation accuracy of this configuration in any of the searches; NaN if none tried it."""
    key = config_key(hyperparameters)
    scores = [best[key][0] for best in (_best_scores(s, batch_size) for s in searches) if key in best]
    return max(scores, default=math.nan)


def _best_scores(search: Any, batch_size: int) -> dict[str, tuple[float, dict[str, Any]]]:
    """{configuration: (its best validation accuracy, its hyperparameters)} of a search's completed trials, in
    the order the trials ran."""
    from study import results
    from study.recipe import canonical

    trials = search.trials
    done = results.completed(trials)
    done = done.sort_values("trial_id", key=lambda ids: ids.map(results.run_order), kind="stable")
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    for _, trial in done.iterrows():
        hp = canonical(results.trial_hyperparameters(trial, trials), batch_size)
        key, score = config_key(hp), float(trial["val_accuracy"])
        if key not in best or score > best[key][0]:
            best[key] = (score, hp)
    return best


@dataclass(frozen=True)
class Arm:
    """How far an arm got: the seeds it ran (or runs this round), the number of seeds it was dropped after, and why."""

    seeds: tuple[int, ...]
    dropped_after: int | None = None
    dropped_because: str | None = None  # WORSE or CANNOT_BEAT


@dataclass(frozen=True)
class Race:
    """Where the race stands, given the saved runs."""

    arms: dict[str, Arm]
    todo: list[tuple[dict[str, Any], int]]  # the missing runs of the round under way, each configuration once
    round: int  # seeds run by every live arm before this round; len(seeds) when the race ran to its end
    left: int  # retrainings still to run, this round's included, if no other arm is dropped (at most)
    saved: int  # retrainings saved of those the race has given or may still give (the rest: `left`)

    @property
    def dropped(self) -> dict[str, tuple[int, str]]:
        """{arm: (seeds run, why)} of the arms dropped, as `stats.analyse` and `stats.challenger` take them."""
        return {n: (a.dropped_after, a.dropped_because) for n, a in self.arms.items() if a.dropped_after is not None}

    @property
    def live(self) -> list[str]:
        return [name for name, arm in self.arms.items() if arm.dropped_after is None]

    def live_text(self) -> str:
        """"4 of 6 arms live" """
        return f"{len(self.live)} of {len(self.arms)} arms live"


def race(arms: Mapping[str, dict[str, Any]], saved: Saved, seeds: Sequence[int], min_seeds: int,
         baseline: str | None = "baseline") -> Race:
    """Replay the race on the saved runs up to the first round with a run missing.

    `arms`: {name: hyperparameters}, the baseline among them. `min_seeds` >= len(seeds): no racing.
    `baseline` None: a race for the best of the arms, whose survivors all get every seed (an ablation's step).
    """
    saved = _remembered(saved)
    dropped: dict[str, tuple[int, str]] = {}  # {name: (seeds run, why)}
    for r, seed in enumerate(seeds):
        live = [name for name in arms if name not in dropped]
        if r >= min_seeds:
            val = {name: {s: saved(arms[name], s).final_val_accuracy for s in seeds[:r]} for name in live}
            dropped.update({name: (r, why) for name, why in drops(val, arms, len(seeds), baseline).items()})
            live = [name for name in live if name not in dropped]
            if baseline is not None and dropped and not _challengers(live, arms, baseline):
                # Nothing is left to beat the baseline: its further seeds would have no purpose.
                return _state(arms, saved, seeds, r, dropped, [], over=True)
        todo = _distinct([(arms[name], seed) for name in live if saved(arms[name], seed) is None])
        if todo:
            return _state(arms, saved, seeds, r, dropped, todo)
    return _state(arms, saved, seeds, len(seeds), dropped, [])


def _challengers(live: Sequence[str], arms: Mapping[str, dict[str, Any]], baseline: str) -> list[str]:
    """The live arms with a configuration other than the baseline's."""
    first = stats.stand_ins({name: arms[name] for name in live}, baseline)
    return [name for name in live if first[name] != first[baseline]]


def drops(val: Mapping[str, Mapping[int, float]], arms: Mapping[str, dict[str, Any]], most_seeds: int,
          baseline: str | None = "baseline") -> dict[str, str]:
    """{arm: why} for the arms to drop, given their validation accuracies ({name: {seed: accuracy}}).

    WORSE: worse than the leader (the live arm with the best mean, the baseline included) beyond the
    noise, paired by seed with the noise pooled over the arms (`stats.compare_to_leader`), Holm over
    the arms that could be dropped: it can be neither the challenger nor better than the baseline.
    CANNOT_BEAT: even `most_seeds` seeds could not show it beating the baseline (`stats.cannot_beat`).
    The baseline is never dropped, nor an arm with its configuration; arms with one configuration are one arm.
    `baseline` None: a race for the best arm alone (an ablation's step), WORSE only.
    """
    first = stats.stand_ins({name: arms[name] for name in val}, baseline)
    distinct = {name: val[name] for name in val if first[name] == name}
    if len(distinct) < 2:
        return {}
    leader, compared = stats.compare_to_leader(distinct)
    why = {name: CANNOT_BEAT for name in stats.cannot_beat(distinct, baseline, most_seeds)} if baseline else {}
    why.update({name: WORSE for name, c in stats.holm({n: c for n, c in compared.items() if n != baseline}).items()
                if stats.verdict(c) == "worse"})
    return {name: why[first[name]] for name in val if first[name] in why}


def _remembered(saved: Saved) -> Saved:
    """`saved`, each run read once: a round's decisions read the runs of every round before it."""
    known: dict[str, Any] = {}

    def load(hyperparameters: dict[str, Any], seed: int) -> Any:
        key = config_key([hyperparameters, seed])
        if key not in known:
            known[key] = saved(hyperparameters, seed)
        return known[key]

    return load


def _distinct(jobs: list[tuple[dict[str, Any], int]]) -> list[tuple[dict[str, Any], int]]:
    """Each (hyperparameters, seed) once: two arms with one configuration share its runs."""
    return list({config_key(job): job for job in jobs}.values())


def _state(arms: Mapping[str, dict[str, Any]], saved: Saved, seeds: Sequence[int], r: int,
           dropped: dict[str, tuple[int, str]], todo: list[tuple[dict[str, Any], int]], over: bool = False) -> Race:
    """The race at round `r` (its runs in `todo`); `over`: it ended there, before the live arms ran seed r."""
    end = r if over else min(r + 1, len(seeds))
    ran = {name: tuple(seeds[:dropped[name][0] if name in dropped else end]) for name in arms}
    later = [] if over else [(arms[name], s) for name in arms if name not in dropped for s in seeds[r + 1:]]
    wanted = _distinct([(arms[name], s) for name, ss in ran.items() for s in ss] + later)
    left = sum(saved(hp, s) is None for hp, s in wanted)
    return Race({name: Arm(ran[name], *dropped.get(name, (None, None))) for name in arms}, todo, r, left,
                len(wanted) - left)
