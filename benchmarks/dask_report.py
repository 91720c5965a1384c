"""The same small report one job at a time, with --parallel 2, and on a 2-worker Dask cluster: wall time and overhead.

    python benchmarks/dask_report.py [--data-dir ../shared/data/cifar10-jpeg.tar.gz] [--subset 1000] [--epochs 2]

Each mode renders its own report folder from nothing (no search: the baseline, SGD and RMSprop, a race of 3 seeds,
2 confirmation seeds); every run's numbers must match across the modes (checked, not assumed). Printed per mode:
the wall time, the retrainings, their own training seconds, and the overhead per job, (wall x jobs at once -
training seconds) / jobs: starting processes, loading the data in each, tracing, sending results back. Then what
one job's result weighs (record and weights) and what sending it through the cluster costs, against its training.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study import report, runtime  # noqa: E402


def _report(folder: Path, argv: list[str]) -> float:
    start = time.perf_counter()
    assert report.main([*argv, "--output", str(folder)]) == 0
    return time.perf_counter() - start


def _runs(folder: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((folder / "runs").glob("seed*.json"))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" /
                                             "cifar10-jpeg.tar.gz"))
    p.add_argument("--subset", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=2)
    args = p.parse_args(argv)
    import distributed

    root = Path(tempfile.mkdtemp(prefix="dask-report-"))
    (root / "none").mkdir()
    threads = str(os.cpu_count())
    common = ["--data-dir", args.data_dir, "--subset", str(args.subset), "--directory", str(root / "none"),
              "--epochs", str(args.epochs), "--seeds", "3", "--confirm-seeds", "2", "--threads", threads]
    print(f"CPU: {runtime.cpu_model()}, {os.cpu_count()} cores; {args.subset} images, {args.epochs} epochs")
    results = {}
    results["one at a time"] = (_report(root / "one", common), 1, root / "one")
    results["--parallel 2"] = (_report(root / "pool", [*common, "--parallel", "2"]), 2, root / "pool")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        results["Dask, 2 workers"] = (_report(root / "dask", [*common, "--scheduler", cluster.scheduler_address]), 2,
                                      root / "dask")
        with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
            sample = next((root / "dask" / "runs").glob("seed*.json"))
            weights = sample.with_suffix(".weights.h5").read_bytes() if sample.with_suffix(".weights.h5").exists() \
                else b""
            payload = (json.loads(sample.read_text()), weights)
            size = len(pickle.dumps(payload))
            start = time.perf_counter()
            for _ in range(10):
                client.gather(client.scatter(payload, hash=False))
            transfer = (time.perf_counter() - start) / 10
    reference = _runs(root / "one")
    for mode, (wall, at_once, folder) in results.items():
        runs = _runs(folder)
        same = runs.keys() == reference.keys() and all(
            runs[k]["y_pred"] == reference[k]["y_pred"] for k in reference)
        seconds = sum(r["seconds"] for r in runs.values())
        overhead = (wall * at_once - seconds) / len(runs)
        print(f"{mode:16s} wall {wall:6.1f} s, {len(runs)} retrainings, {seconds:6.1f} s of training, overhead "
              f"{overhead:5.1f} s a job; the same numbers as one at a time: {same}")
    mean = sum(r["seconds"] for r in reference.values()) / len(reference)
    print(f"one job's result: {size / 1e6:.2f} MB (record and weights); a round trip through the cluster "
          f"{1000 * transfer:.0f} ms, {100 * transfer / mean:.2f}% of its {mean:.1f} s of training")
    one, dask = results["one at a time"][0], results["Dask, 2 workers"][0]
    print(f"ratio (Dask, 2 workers / one at a time, wall): {dask / one:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
