"""What racing would have run on a report's saved runs, replayed offline: no training, no test set.

    python benchmarks/racing_replay.py --directory tuner_results --runs reports/runs [--min-seeds 2] [--seeds 5]

Plans the arms as `python -m study.report` does (each search's best, or --candidates N), replays
`study.racing.race` on the saved runs, and prints per arm the seeds the race gives it, where it was
dropped, and the retrainings and compute (the saved runs' own seconds) it would have skipped.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from study import arms as arms_lib
from study import report
from study.config import BASELINE, ReportConfig, config_key
from study.records import RunStore, find_searches


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--directory", required=True)
    p.add_argument("--runs", required=True)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--min-seeds", type=int, default=2)
    p.add_argument("--candidates", type=int)
    p.add_argument("--seed", type=int, help="the race's first seed (default: past every search's, as the report)")
    args = p.parse_args()
    searches = find_searches(Path(args.directory))
    first = json.loads(next(Path(args.runs).glob("seed*-*.json")).read_text())
    settings = first["settings"]  # the report's own: data, epochs, batch size, backend, model
    store = RunStore(Path(args.runs), settings)
    arms = arms_lib.plan(searches, BASELINE.hyperparameters(), settings["batch_size"], args.candidates)
    seed = report.first_seed(args.seed, searches, args.seeds, 0)
    cfg = ReportConfig(seeds=args.seeds, min_seeds=args.min_seeds, seed=seed)
    state = arms_lib.race(store, arms, cfg)
    fixed = arms_lib.race(store, arms, ReportConfig(seeds=args.seeds, min_seeds=args.seeds, seed=cfg.seed))
    if state.todo or fixed.todo:
        raise SystemExit(f"runs missing in {args.runs}: the race wants {state.todo or fixed.todo}")
    used = {config_key([arms[n], s]): store.load(arms[n], s)
            for n, a in state.arms.items() for s in a.seeds}
    every = {config_key([arms[n], s]): store.load(arms[n], s)
             for n, a in fixed.arms.items() for s in a.seeds}
    for name, arm in state.arms.items():
        print(f"{name:40s} seeds {list(arm.seeds)}" + (f"  dropped after {arm.dropped_after} ({arm.dropped_because})"
                                                     if arm.dropped_after else ""))
    hours = [sum(r.seconds for r in runs.values()) / 3600 for runs in (used, every)]
    print(f"racing (--min-seeds {args.min_seeds}): {len(used)} retrainings, {hours[0]:.2f} h of compute; "
          f"fixed {args.seeds} seeds: {len(every)} retrainings, {hours[1]:.2f} h; "
          f"ratio {len(used) / len(every):.2f} (retrainings), {hours[0] / hours[1]:.2f} (compute)")


if __name__ == "__main__":
    main()
