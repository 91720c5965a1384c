"""Search cost: the epochs and wall time each strategy spends to reach the full grid's best score.

    python benchmarks/search_cost.py --subset 3000 --epochs 9

On one fixed subset, runs `python -m study.search` (in process, into a temporary directory) as:
- full grid: every grid point for every epoch (`--early-stopping 0`): the reference;
- grid, bayesian, hyperband: each with the CLI's defaults (early stopping, 10 Bayesian trials,
  Hyperband's own budget with `--epochs` as its most epochs per trial).

A strategy "reaches" the target when the best validation accuracy of its trials so far, in the
order they ran, is within `--tolerance` (0.5 points) of the full grid's best; it is charged the
epochs and seconds of every trial up to and including that one. Bayesian and Hyperband sample a
wider space than the grid (learning rates and dropouts), so they may also beat the grid.
The last line is `epochs_ratio: X.XX`: the default strategy's epochs to reach the target over
the full grid's epochs (`inf` if it never reaches it).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
STRATEGIES = {
    "full grid": ["--tuner", "grid", "--early-stopping", "0"],
    "grid": ["--tuner", "grid"],
    "bayesian": ["--tuner", "bayesian"],
    "hyperband": ["--tuner", "hyperband"],
}


def cost_to_reach(frame, target: float) -> dict:
    """Epochs and seconds spent, in trial order, until the best score so far reaches `target`."""
    import pandas as pd

    frame = frame.sort_values("trial_id")
    epochs = seconds = 0.0
    best = -math.inf
    for n, (_, row) in enumerate(frame.iterrows(), 1):
        epochs += 0 if pd.isna(row["epochs"]) else int(row["epochs"])
        seconds += 0.0 if pd.isna(row["seconds"]) else float(row["seconds"])
        if row["status"] == "COMPLETED" and not pd.isna(row["val_accuracy"]):
            best = max(best, float(row["val_accuracy"]))
        if best >= target:
            return {"reached": True, "epochs": epochs, "seconds": seconds, "trials": n}
    return {"reached": False, "epochs": epochs, "seconds": seconds, "trials": len(frame)}


class _StampedLog(io.TextIOBase):
    """Collects printed lines with the time each was printed, to check the search's estimates later."""

    def __init__(self):
        self.lines: list[tuple[float, str]] = []
        self._partial = ""

    def write(self, text: str) -> int:
        *done, self._partial = (self._partial + text).split("\n")
        now = time.monotonic()
        self.lines += [(now, line) for line in done]
        return len(text)


_PROGRESS = re.compile(r"^trial (\S+) .* (\d+)/(\d+) done(?:, about (\S+) left)?")


def _seconds(text: str) -> float:
    parts = dict((unit, float(v)) for v, unit in re.findall(r"(\d+)([hms])", text))
    return parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)


def eta_errors(lines: list[tuple[float, str]]) -> list[tuple[int, float, float]]:
    """(trials done, estimated seconds left, actual seconds left) after each finished trial."""
    progress = [(t, m) for t, line in lines if (m := _PROGRESS.match(line))]
    if not progress:
        return []
    end = progress[-1][0]
    return [(int(m.group(2)), _seconds(m.group(4)), end - t) for t, m in progress if m.group(4)]


def run_strategy(name: str, args: argparse.Namespace, directory: str):
    """Run one strategy's search quietly; returns its trials DataFrame, wall time and timed log."""
    sys.path.insert(0, str(ROOT))
    from study import results, search

    argv = [
        *STRATEGIES[name], "--data-dir", args.data_dir, "--subset", str(args.subset), "--epochs", str(args.epochs),
        "--seed", str(args.seed), "--directory", directory, "--project-name", name.replace(" ", "_"),
    ]  # fmt: skip
    start = time.perf_counter()
    log = _StampedLog()
    with contextlib.redirect_stdout(log):
        status = search.main(argv)
    wall = time.perf_counter() - start
    text = "\n".join(line for _, line in log.lines)
    if status != 0:
        raise SystemExit(f"{name}: python -m study.search {' '.join(argv)} exited with {status}\n{text[-2000:]}")
    project = Path(directory) / name.replace(" ", "_")
    (project / "search.log").write_text(text + "\n")
    return results.trials_frame(project), wall, log.lines


def _report_eta(name: str, lines) -> None:
    errors = eta_errors(lines)
    if errors:
        shown = ", ".join(f"after {k}: {est:.0f} s est. vs {act:.0f} s ({est / act - 1:+.0%})" for k, est, act in errors if act > 0)
        print(f"  {name} time-left estimates: {shown}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(DEFAULT_DATA), help=f"image-folder dataset (default: {DEFAULT_DATA})")
    p.add_argument("--subset", type=int, default=3000, help="stratified training subset (default: 3000)")
    p.add_argument("--epochs", type=int, default=9, help="epochs per trial, Hyperband's maximum (default: 9)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tolerance", type=float, default=0.005, help="accuracy below the grid's best that counts (default: 0.005)")
    p.add_argument("--default", default="grid", choices=[s for s in STRATEGIES if s != "full grid"],
                   help="the strategy whose cost is the last line (default: grid, the CLI's default tuner)")
    p.add_argument("--strategies", default=",".join(s for s in STRATEGIES if s != "full grid"),
                   help="comma-separated strategies to run besides the full grid (default: all)")
    p.add_argument("--directory", help="keep the searches here (default: a temporary directory)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    chosen = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if args.default not in chosen:
        chosen.append(args.default)
    with contextlib.ExitStack() as stack:
        directory = args.directory or stack.enter_context(tempfile.TemporaryDirectory())
        print(f"subset {args.subset}, {args.epochs} epochs per trial, seed {args.seed}, into {directory}", flush=True)
        full, wall, lines = run_strategy("full grid", args, directory)
        best = full["val_accuracy"].max()
        total = {"epochs": float(full["epochs"].sum()), "seconds": float(full["seconds"].sum())}
        target = best - args.tolerance
        print(f"full grid: {len(full)} trials, {total['epochs']:.0f} epochs, {total['seconds']:.0f} s of training "
              f"({wall:.0f} s wall), best val_accuracy {best:.4f}; target {target:.4f}", flush=True)
        _report_eta("full grid", lines)
        costs = {}
        for name in chosen:
            frame, wall, lines = run_strategy(name, args, directory)
            cost = costs[name] = cost_to_reach(frame, target)
            where = (f"reached the target at trial {cost['trials']}" if cost["reached"]
                     else f"never reached it (best {frame['val_accuracy'].max():.4f})")  # fmt: skip
            print(
                f"{name}: {where} after {cost['epochs']:.0f} epochs ({cost['epochs'] / total['epochs']:.2f} of the full "
                f"grid's) and {cost['seconds']:.0f} s ({cost['seconds'] / total['seconds']:.2f}); the whole search: "
                f"{len(frame)} trials, {frame['epochs'].sum()} epochs, {wall:.0f} s wall, best {frame['val_accuracy'].max():.4f}",
                flush=True,
            )
            _report_eta(name, lines)
    cost = costs[args.default]
    ratio = cost["epochs"] / total["epochs"] if cost["reached"] else math.inf
    print(f"default strategy: {args.default}")
    print(f"epochs_ratio: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
