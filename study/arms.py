"""The report's arms: the configurations it compares, and where their race and confirmation stand in the saved runs."""
from __future__ import annotations

from typing import Any

from study import confirm, racing, results, retrain, stats
from study.config import BASELINE, OPTIMIZER_COMPARISON, ReportConfig, config_key
from study.records import Run, RunStore, Search


def plan(searches: list[Search], baseline: dict[str, Any], batch_size: int = BASELINE.batch_size,
         candidates: int | None = None, compare: tuple[str, ...] = ("sgd", "rmsprop")) -> dict[str, dict[str, Any]]:
    """{arm name: hyperparameters}: the baseline, the optimizers of `compare` (each at Keras's default learning
    rate, the baseline's other values) and each search's best trial.

    Training hyperparameters at the value a configuration naming none trains with (the notebook's, the
    report's batch size) are left out (study.recipe.canonical): the same configuration is one arm's runs.
    Searches whose bests are the same configuration share one arm, named after all of them ("grid best =
    bayesian best"), as does a search's best with the SGD or RMSprop arm ("sgd = grid best"); a search's best
    that is the baseline's configuration stays an arm of its own, shown as such.
    `candidates`: the N best distinct configurations of all the searches instead (study.racing.candidates).
    """
    from study.recipe import canonical

    baseline = canonical(baseline, batch_size)
    arms = {"baseline": baseline}
    for optimizer in compare:
        arm = {**baseline, "optimizer": optimizer, "learning_rate": OPTIMIZER_COMPARISON[optimizer]}
        if config_key(arm) != config_key(baseline):
            arms[optimizer] = arm
    if candidates is not None:
        return {**arms, **racing.candidates(searches, candidates, list(arms.values()), batch_size)}
    named: dict[str, tuple[list[str], dict[str, Any]]] = {}  # one arm per distinct configuration
    for name, hp in arms.items():
        if name != "baseline":
            named[config_key(hp)] = ([name], hp)
    for s in searches:
        if s.best is not None:
            hp = canonical(results.trial_hyperparameters(s.best, s.trials), batch_size)
            named.setdefault(config_key(hp), ([], hp))[0].append(f"{s.name} best")
    return {"baseline": baseline, **{" = ".join(names): hp for names, hp in named.values()}}


def jobs(arms: dict[str, dict[str, Any]], cfg: ReportConfig) -> list[tuple[dict[str, Any], int]]:
    """Every distinct (hyperparameters, seed) of a race run to its end, in arm order then seed."""
    return list({config_key([hp, seed]): (hp, seed) for hp in arms.values() for seed in cfg.race_seeds}.values())


def race(store: RunStore, arms: dict[str, dict[str, Any]], cfg: ReportConfig, n_test: int | None = None) -> racing.Race:
    """Where the race stands, replayed from the saved runs (study.racing): the same decisions after any crash."""
    return racing.race(arms, lambda hp, seed: store.load(hp, seed, n_test), cfg.race_seeds, cfg.min_seeds)


def raced_runs(store: RunStore, arms: dict[str, dict[str, Any]], state: racing.Race) -> dict[str, list[Run]]:
    """Each arm's saved run of every seed it ran in the race, in seed order."""
    return {name: [store.load(arms[name], s) for s in state.arms[name].seeds] for name in arms}


def confirmation_jobs(store: RunStore, arms: dict[str, dict[str, Any]], state: racing.Race, cfg: ReportConfig,
                      n_test: int | None = None) -> list[retrain.Job]:
    """The confirmation's pairs still to train, once the race is over and has a challenger; else none."""
    picked = challenger(store, arms, state)
    if state.todo or picked is None or not cfg.confirm_seeds:
        return []
    return confirm.pairs(store, arms["baseline"], arms[picked], cfg.confirmation_seeds, n_test)[0]


def challenger(store: RunStore, arms: dict[str, dict[str, Any]], state: racing.Race) -> str | None:
    """The arm the finished race picks by validation (study.stats.pick); None while it runs or if none is left."""
    if state.todo:
        return None
    return stats.pick(raced_runs(store, arms, state), dropped=state.dropped)


def confirmation(store: RunStore, arms: dict[str, dict[str, Any]], state: racing.Race, cfg: ReportConfig,
                 n_test: int | None = None) -> tuple[list[Run], list[Run]] | None:
    """(the baseline's runs, the challenger's runs) on the confirmation seeds; None without a confirmation."""
    picked = challenger(store, arms, state)
    if picked is None or not cfg.confirm_seeds:
        return None
    return confirm.runs(store, arms["baseline"], arms[picked], cfg.confirmation_seeds, n_test)
