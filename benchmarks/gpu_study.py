"""A whole study on one GPU: the three searches side by side, then the report, each command timed.

    python benchmarks/gpu_study.py                  # on a GPU: all of CIFAR-10, KERAS_BACKEND=jax
    python benchmarks/gpu_study.py --smoke          # any machine, a couple of minutes on 2 CPU cores

It runs, in a fresh folder (a temporary one unless --work-dir), the study the README describes:

1. `python -m study.search` with the grid (9 trials), Bayesian optimisation (15 trials) and Hyperband,
   all three at once, each with `--parallel K` trials at once (--parallel, default 3,3,2: the 8
   trainings side by side that `study.devices` found to fill an H100, shared among them);
2. then `python -m study.report --seeds 5` on those three searches, its retrainings side by side
   (the report's own default on a GPU).

Every command runs with KERAS_BACKEND=jax (--backend), on the images of --data-dir (default: the
project's CIFAR-10 archive, ../shared/data/cifar10-jpeg.tar.gz). The script prints each command and
its seconds as it ends, and last `study_seconds: N`, the wall time of the whole study. A command
that fails stops the study, with the end of its log.

--smoke runs the same commands on tiny settings (a generated 10-class dataset of 150 images,
1-2 epochs, 2 trials per search, --parallel 2,1,1, 1 seed), so the tests can check the script on a CPU.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CIFAR = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
SEARCHES = ("grid", "bayesian", "hyperband")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", help=f"the images (default: {CIFAR}; --smoke: a generated tiny dataset)")
    p.add_argument("--backend", default="jax", help="KERAS_BACKEND of every command (default: jax)")
    p.add_argument("--parallel", help="--parallel of the grid, Bayesian and Hyperband searches "
                   "(default: 3,3,2; --smoke: 2,1,1)")
    p.add_argument("--report-parallel", type=int, help="the report's --parallel (default: the report's own)")
    p.add_argument("--seeds", type=int, default=5, help="the report's --seeds (default: 5)")
    p.add_argument("--work-dir", help="where the searches and the report go (default: a temporary folder, deleted)")
    p.add_argument("--smoke", action="store_true", help="tiny settings: checks that the script runs, anywhere")
    return p


def _commands(args: argparse.Namespace, data: Path, work: Path) -> tuple[dict[str, list[str]], list[str]]:
    """The three searches' arguments by tuner, and the report's."""
    per_search = dict(zip(SEARCHES, (args.parallel or ("2,1,1" if args.smoke else "3,3,2")).split(",")))
    common = ["--data-dir", str(data), "--directory", str(work / "tuner_results")]
    if args.smoke:
        common += ["--optimizers", "adam", "--learning-rates", "0.001,0.01", "--dropout1",
                   "0.2", "--dropout2", "0.3", "--dropout3", "0.4"]
    extra = {"grid": ["--epochs", "1"] if args.smoke else [],
             "bayesian": ["--max-trials", "2", "--epochs", "1"] if args.smoke else ["--max-trials", "15"],
             "hyperband": ["--epochs", "2", "--max-trials", "2"] if args.smoke else []}
    searches = {t: ["--tuner", t, *common, *extra[t], "--parallel", per_search[t]] for t in SEARCHES}
    report = ["--directory", str(work / "tuner_results"), "--output", str(work / "reports"), "--seeds",
              str(1 if args.smoke else args.seeds), *(["--epochs", "1"] if args.smoke else [])]
    if args.report_parallel:
        report += ["--parallel", str(args.report_parallel)]
    return searches, report


def _start(module: str, argv: list[str], log: Path, backend: str) -> subprocess.Popen:
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", module, *argv], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=ROOT)  # fmt: skip


def _finish(name: str, proc: subprocess.Popen, log: Path, started: float) -> float:
    code = proc.wait()
    seconds = time.monotonic() - started
    if code != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise SystemExit(f"{name} failed (exit {code}) after {seconds:.1f} s; the end of {log}:\n{tail}")
    print(f"{name}: {seconds:.1f} s", flush=True)
    return seconds


def _tiny_dataset(folder: Path) -> Path:
    """10 classes of 15 PNGs each, whose colour depends on the class: enough for every command to run."""
    import numpy as np
    from PIL import Image

    for c in range(10):
        rng = np.random.default_rng(c)
        base = rng.integers(0, 256, size=3)
        (folder / f"class{c}").mkdir(parents=True)
        for i in range(15):
            pixels = np.clip(base + rng.normal(0, 40, size=(32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"class{c}" / f"{i:03d}.png")
    return folder


def run_study(args: argparse.Namespace, work: Path) -> float:
    data = Path(args.data_dir) if args.data_dir else (_tiny_dataset(work / "data") if args.smoke else CIFAR)
    if not data.exists():
        raise SystemExit(f"no data at {data}: pass --data-dir")
    searches, report = _commands(args, data, work)
    print(f"backend: {args.backend}; data: {data}; work: {work}", flush=True)
    begin = time.monotonic()
    running = {}
    for tuner, argv in searches.items():  # side by side: each its own project, none waits for another
        print(f"started: python -m study.search {shlex.join(argv)}", flush=True)
        running[tuner] = (_start("study.search", argv, work / f"{tuner}.log", args.backend), time.monotonic())
    try:
        for tuner, (proc, started) in running.items():
            _finish(f"search {tuner}", proc, work / f"{tuner}.log", started)
    finally:
        for proc, _ in running.values():  # one failed: the others are stopped, not left running
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
    print(f"started: python -m study.report {shlex.join(report)}", flush=True)
    started = time.monotonic()
    _finish("report", _start("study.report", report, work / "report.log", args.backend), work / "report.log", started)
    return time.monotonic() - begin


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.work_dir:
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        total = run_study(args, work)
    else:
        with tempfile.TemporaryDirectory(prefix="gpu_study-") as folder:
            total = run_study(args, Path(folder))
    print(f"study_seconds: {total:.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
