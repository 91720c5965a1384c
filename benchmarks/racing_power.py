"""What racing costs in answers: simulated reports, racing against fixed seeds, on the same simulated runs.

    python benchmarks/racing_power.py [--races 200] [--seed 0]

Each simulated report has the baseline and 7 challengers (8 arms, as `--candidates 5` gives), 5 seeds.
A run's quality is its arm's true gain + a seed effect shared by the arms (same initial weights and data
order) + the run's own noise; its validation and test accuracies add their own sampling noise. The
report's rules then decide, exactly as `study.report` does: `study.racing.race` spends the seeds,
validation picks the challenger, and one paired t-test on the race's own test accuracies confirms it or
not, as the report did before issue 31 (`study.stats`; its confirmation on fresh seeds:
benchmarks/protocol_error.py). Printed per scenario: retrainings, and how often each rule recommends a challenger
(a real one, where one arm is truly better). No training, no data: a few minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
from types import SimpleNamespace
from unittest import mock

import numpy as np

from study import racing, stats

SEEDS = [1, 2, 3, 4, 5]
NOISE = {"seed": 1.0, "run": 0.8, "val": 0.6, "test": 0.6}  # points; a run's test accuracy varies by 1.0 point
SCENARIOS = {  # true gains over the baseline (points) of the 7 challengers; the first is the one that matters
    "all level with the baseline": [0, 0, 0, 0, 0, 0, 0],
    "one +1 point": [1, 0, 0, 0, 0, 0, 0],
    "one +2 points": [2, 0, 0, 0, 0, 0, 0],
    "one +3 points": [3, 0, 0, 0, 0, 0, 0],
    "like 10,000 images (benchmarks 9c)": [0.5, -25, -1, -0.5, -0.5, -1.5, -5],
}


def simulate(gains: list[float], rng: np.random.Generator) -> dict[str, dict[int, SimpleNamespace]]:
    """{arm: {seed: run}} with the validation and test accuracies (fractions) of every run."""
    seed_effect = {s: rng.normal(0, NOISE["seed"]) for s in SEEDS}
    runs = {}
    for i, gain in enumerate([0.0, *gains]):
        runs[f"arm{i}"] = {}
        for s in SEEDS:
            quality = 60 + gain + seed_effect[s] + rng.normal(0, NOISE["run"])
            runs[f"arm{i}"][s] = SimpleNamespace(final_val_accuracy=(quality + rng.normal(0, NOISE["val"])) / 100,
                                                 test=(quality + rng.normal(0, NOISE["test"])) / 100)
    return runs


def decide(runs: dict[str, dict[int, SimpleNamespace]], min_seeds: int) -> tuple[int, str]:
    """(retrainings, the recommended arm) of one report on these runs, raced from `min_seeds` seeds on."""
    arms = {name: {"arm": name} for name in runs}
    state = racing.race(arms, lambda hp, s: runs[hp["arm"]][s], SEEDS, min_seeds, baseline="arm0")
    val = {n: np.mean([runs[n][s].final_val_accuracy for s in state.arms[n].seeds]) for n in runs if n != "arm0"}
    pick = stats.challenger(val, state.dropped)
    if pick is None:  # every challenger dropped: nothing is left to beat the baseline
        return sum(len(a.seeds) for a in state.arms.values()), "arm0"
    seeds = state.arms[pick].seeds
    c = stats.compare_paired_seeds({s: runs["arm0"][s].test for s in seeds}, {s: runs[pick][s].test for s in seeds})
    recommended = pick if stats.beats_baseline(c) else "arm0"
    return sum(len(a.seeds) for a in state.arms.values()), recommended


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--races", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rules = {"fixed 5 seeds": (5, False), "racing, worse only": (2, False), "racing (default)": (2, True)}
    print(f"noise (points): {json.dumps(NOISE)}; {args.races} simulated reports per scenario, 8 arms, 5 seeds")
    for scenario, gains in SCENARIOS.items():
        rng = np.random.default_rng(args.seed)
        reports = [simulate(gains, rng) for _ in range(args.races)]
        for rule, (min_seeds, futility) in rules.items():
            with mock.patch.object(stats, "cannot_beat", stats.cannot_beat if futility else lambda *a: {}):
                out = [decide(r, min_seeds) for r in reports]
            trained = np.mean([n for n, _ in out])
            any_pick = np.mean([pick != "arm0" for _, pick in out])
            real = np.mean([pick == "arm1" for _, pick in out])
            print(f"{scenario:36s} {rule:20s} retrainings {trained:4.1f} of 40; recommends a challenger "
                  f"{100 * any_pick:4.1f}%, the first (the best, if any is) {100 * real:4.1f}%")


if __name__ == "__main__":
    main()
