"""How often the report says "beats the baseline": simulated reports, today's protocol against the confirmed one.

    python benchmarks/protocol_error.py [--reports 4000] [--power-reports 1000] [--r 0.70,0.85] [--challengers 4,8]

Each simulated study has k searches (k challengers) of N = 20 trials each, then the report. A run's test
and validation accuracy (points) are its arm's true gain + a seed effect shared by every arm of that seed
(same initial weights and data order) + a residual of its own; the residuals of validation and test
correlate by r after arm and seed are removed (the audit measured r = 0.70 and 0.85 in the committed
studies), and a run's residual test accuracy varies by 0.7 points from seed to seed. A search picks its best
trial on validation; every trial of a search trains with the search's seed.

- "before issue 31": the report's seeds start at the search's seed, so a searched arm's first run *is*
  its winning trial; the race (the real `study.racing.race`) spends seeds 1-5, validation picks the
  challenger (`study.stats.pick`), and a paired t-test on the race's own test accuracies decides.
- "confirmed": the race's seeds 2-6 come after the search's, then the challenger and the baseline train
  5 fresh seeds (7-11), whose paired t-test alone decides (`study.stats.beats_baseline`).

Printed per protocol: the rate of "beats the baseline" when no arm is better (one-sided nominal 2.5%,
with its binomial 95% interval), the power at +1 and +2 points (one challenger truly better), and the
retrainings. No training, no data.
"""
from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study import racing, runtime, stats  # noqa: E402

# Points. RESIDUAL_SD: a run's own noise, what pairing by seed leaves (the per-seed sd of 0.7 points); the
# seed effect, shared by every arm of a seed, cancels in every paired comparison.
SEED_SD, RESIDUAL_SD = 0.60, 0.70
TRIALS = 20  # per search
RACE, CONFIRM = 5, 5  # seeds


def _draws(rng: np.random.Generator, n: int, r: float) -> tuple[np.ndarray, np.ndarray]:
    """n residuals of (validation, test), each of sd RESIDUAL_SD, correlated by r."""
    shared = rng.normal(0, RESIDUAL_SD * math.sqrt(r), n)
    return (shared + rng.normal(0, RESIDUAL_SD * math.sqrt(1 - r), n),
            shared + rng.normal(0, RESIDUAL_SD * math.sqrt(1 - r), n))


def _run(seed: int, gain: float, seed_effect: float, val: float, test: float, arm: str) -> SimpleNamespace:
    """A run as `study.stats` and `study.racing` read one: accuracies as fractions, its configuration."""
    return SimpleNamespace(seed=seed, hyperparameters={"arm": arm}, machine=None,
                           final_val_accuracy=(60 + gain + seed_effect + val) / 100,
                           history={"val_accuracy": [(60 + gain + seed_effect + val) / 100]},
                           test_accuracy=(60 + gain + seed_effect + test) / 100)


class Study:
    """One simulated study: k searches, then any run of any arm at any seed, drawn once and kept."""

    def __init__(self, gains: list[float], r: float, rng: np.random.Generator):
        self.gains, self.r, self.rng = {"baseline": 0.0, **{f"c{i}": g for i, g in enumerate(gains, 1)}}, r, rng
        self.seed_effects: dict[int, float] = {}
        self.runs: dict[tuple[str, int], SimpleNamespace] = {}
        for arm, gain in self.gains.items():  # each challenger is its search's winner among TRIALS at seed 1
            if arm != "baseline":
                val, test = _draws(rng, TRIALS, r)
                best = int(np.argmax(val))
                self.runs[(arm, 1)] = _run(1, gain, self._seed(1), val[best], test[best], arm)

    def _seed(self, seed: int) -> float:
        return self.seed_effects.setdefault(seed, float(self.rng.normal(0, SEED_SD)))

    def run(self, arm: str, seed: int) -> SimpleNamespace:
        if (arm, seed) not in self.runs:
            (val,), (test,) = _draws(self.rng, 1, self.r)
            self.runs[(arm, seed)] = _run(seed, self.gains[arm], self._seed(seed), val, test, arm)
        return self.runs[(arm, seed)]


def report(study: Study, first: int, confirm: int) -> tuple[str, int]:
    """(the recommended arm, retrainings) of one report whose race starts at seed `first`."""
    arms = {name: {"arm": name} for name in study.gains}
    seeds = list(range(first, first + RACE))
    state = racing.race(arms, lambda hp, s: study.run(hp["arm"], s), seeds, 2)
    runs = {name: [study.run(name, s) for s in state.arms[name].seeds] for name in arms}
    trained = sum(len(a.seeds) for a in state.arms.values())
    pick = stats.pick(runs, dropped=state.dropped)
    if pick is None:
        return "baseline", trained
    # The decision's paired t-test on test accuracy (stats.compare_runs takes it for several seeds of continuous
    # accuracies), on the race's seeds before issue 31, on fresh seeds after.
    seeds = state.arms[pick].seeds if not confirm else range(first + RACE, first + RACE + confirm)
    c = stats.compare_paired_seeds({s: study.run("baseline", s).test_accuracy for s in seeds},
                                   {s: study.run(pick, s).test_accuracy for s in seeds})
    return (pick if stats.beats_baseline(c) else "baseline"), trained + 2 * confirm


PROTOCOLS = {"before issue 31": (1, 0), "confirmed": (2, CONFIRM)}  # (the race's first seed, confirmation seeds)


def rate(protocol: str, gains: list[float], r: float, n: int, seed: int) -> tuple[float, float, float]:
    """(share of reports recommending c1 where it is better, else any challenger; mean retrainings; seconds)."""
    rng, start = np.random.default_rng(seed), time.perf_counter()
    first, confirm = PROTOCOLS[protocol]
    hits, trained = 0, 0
    # statsmodels' Holm correction runs a full garbage collection on every call: most of this loop's time
    # (45 ms a call beside Keras), and nothing to collect here.
    with mock.patch.object(gc, "collect", lambda *args: 0):
        for _ in range(n):
            picked, cost = report(Study(gains, r, rng), first, confirm)
            hits += picked == "c1" if gains[0] else picked != "baseline"
            trained += cost
    return hits / n, trained / n, time.perf_counter() - start


def binomial_band(k: int, n: int) -> tuple[float, float]:
    """The 95% Wilson interval of a rate: the band a simulated rate is read against."""
    return stats.wilson_interval(k, n)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reports", type=int, default=4000, help="simulated reports per cell with no arm better "
                   "(default 4000)")
    p.add_argument("--power-reports", type=int, default=1000, help="per cell with one arm better (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--r", default="0.70,0.85", help="residual correlations of validation and test")
    p.add_argument("--challengers", default="4,8", help="numbers of challengers (searches)")
    args = p.parse_args(argv)
    print(f"CPU: {runtime.cpu_model()}; {args.reports} reports per cell ({args.power_reports} for power); seed sd {SEED_SD}, residual sd "
          f"{RESIDUAL_SD} points; {TRIALS} trials per search; race {RACE} seeds from 2 on, confirmation {CONFIRM}")
    for r in (float(x) for x in args.r.split(",")):
        for k in (int(x) for x in args.challengers.split(",")):
            for protocol in PROTOCOLS:
                null, cost, secs = rate(protocol, [0.0] * k, r, args.reports, args.seed)
                low, high = binomial_band(round(null * args.reports), args.reports)
                powers = [rate(protocol, [gain] + [0.0] * (k - 1), r, args.power_reports, args.seed + 1)[0]
                          for gain in (1.0, 2.0)]
                print(f"r {r:.2f}, {k} challengers, {protocol:16s}: beats the baseline when none is better "
                      f"{100 * null:4.1f}% (95% {100 * low:.1f}-{100 * high:.1f}); power +1 point "
                      f"{100 * powers[0]:4.1f}%, +2 points {100 * powers[1]:4.1f}%; retrainings {cost:4.1f} "
                      f"({secs:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
