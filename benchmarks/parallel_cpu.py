"""`--parallel 2` against `--parallel 1` on a CPU: the same grid search, interleaved, timed end to end.

    python benchmarks/parallel_cpu.py --pairs 3      # about 8 minutes on 2 cores

Each run is a fresh `python -m study.search` (its own temporary project) of the default 9-point grid on
--subset images for --epochs epochs; the pairs alternate which of the two goes first, so that a
machine shared with other work slows both alike. Printed per run: the wall time of the command
(start-up and data loading included) and the summed seconds of its trials; then the median of each
and the ratio. The CPU model is printed first.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def _run(k: int, args: argparse.Namespace) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="parallel_cpu-") as folder:
        argv = [sys.executable, "-m", "study.search", "--data-dir", str(args.data_dir), "--subset", str(args.subset),
                "--epochs", str(args.epochs), "--directory", folder, "--parallel", str(k)]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
        start = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        wall = time.monotonic() - start
        if proc.returncode != 0:
            raise SystemExit(f"--parallel {k} failed:\n{proc.stderr[-3000:]}")
        trials = pd.read_csv(Path(folder) / "grid" / "trials.csv")
        return wall, float(trials.seconds.sum())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--subset", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--data-dir", default=str(CIFAR))
    args = p.parse_args()
    from study.runtime import cpu_model

    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; grid of 9, --subset {args.subset} --epochs {args.epochs}",
          flush=True)
    times: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    for pair in range(args.pairs):
        for k in ((1, 2) if pair % 2 == 0 else (2, 1)):
            wall, in_trials = _run(k, args)
            times[k].append((wall, in_trials))
            print(f"pair {pair + 1}, --parallel {k}: {wall:.1f} s wall, {in_trials:.1f} s in trials", flush=True)
    wall = {k: statistics.median(w for w, _ in v) for k, v in times.items()}
    for k, v in times.items():
        print(f"--parallel {k}: median {wall[k]:.1f} s wall, {statistics.median(t for _, t in v):.1f} s in trials")
    print(f"ratio (--parallel 2 / --parallel 1, wall): {wall[2] / wall[1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
