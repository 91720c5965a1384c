"""Training throughput: the notebook's path against the study's, on real data, A B A B.

    python benchmarks/train_throughput.py --images 10000 --epochs 2 --pairs 3

Path A (notebook): `model.fit` on float64 NumPy arrays scaled to [0, 1], batch 64, validation on
float64 arrays. Path B (study): `study.training.fit` on uint8 arrays, in a process set up as the
study's commands set theirs up (`study.runtime.configure`: allocators). Both train the same
baseline CNN from the same initial weights for the same epochs, each run in a fresh process so
nothing (threads, caches, memory) carries over from one path into the other. images/s counts the
epochs after the first (the first also traces the training and validation functions), as "seconds
per epoch" does; the all-in figure, first epoch and evaluation included, is printed too.

The machine is shared and its speed drifts by tens of percent between minutes, so runs alternate
A B A B and the result is the median of the pairwise ratios B / A. Between runs a float32 matrix
multiply measures the machine's current peak, so each run's images/s is also given as a fraction
of that peak. The last line is `ratio: X.XX` (study / notebook).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
PATHS = ("notebook", "study")


def forward_macs(model) -> int:
    """Multiply-adds of one forward pass for one image (Conv2D and Dense layers only)."""
    import keras

    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            _, h, w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            macs += h * w * c_out * kh * kw * c_in
        elif isinstance(layer, keras.layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    return macs


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best of `repeats` float32 n x n matrix multiplies with NumPy's BLAS, in GFLOP/s."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up: thread pool and caches
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def _worker(path: str, data_file: str, epochs: int, seed: int) -> dict:
    """Train once along `path` and return images/s, test accuracy and the model's FLOP per image."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    if path == "study":  # the process settings of the study's commands (allocators), before TensorFlow loads
        from study import runtime

        runtime.configure()
    import numpy as np

    from study import model as model_lib
    from study import training

    import keras

    d = np.load(data_file)
    x, y, x_val, y_val, x_test, y_test = (d[k] for k in ("x", "y", "x_val", "y_val", "x_test", "y_test"))
    class EpochTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    timer = EpochTimes()
    keras.utils.set_random_seed(seed)
    model = model_lib.build_model(x.shape[1:], int(y.max()) + 1)
    start = time.perf_counter()
    if path == "notebook":
        # The notebook: float64 arrays (NumPy's default for x / 255.0), batch 64, validation each epoch.
        xf, xvf = x / 255.0, x_val / 255.0
        model.fit(xf, y, validation_data=(xvf, y_val), epochs=epochs, batch_size=64, callbacks=[timer], verbose=0)
        seconds = time.perf_counter() - start
        _, accuracy = model.evaluate(x_test / 255.0, y_test, batch_size=64, verbose=0)
    else:
        training.fit(model, x, y, validation_data=(x_val, y_val), epochs=epochs, batch_size=64, seed=seed,
                      callbacks=[timer], verbose=0)  # fmt: skip
        seconds = time.perf_counter() - start
        proba = training.predict_proba(model, x_test)
        accuracy = float((proba.argmax(axis=1) == y_test).mean())
    # After the first epoch (which also traces the training and validation functions): what every
    # later epoch of a trial costs. With one epoch only, the whole run is all there is.
    steady = timer.seconds[1:] or timer.seconds
    return {
        "path": path,
        "images_per_s": len(x) * len(steady) / sum(steady),
        "images_per_s_all_in": len(x) * epochs / seconds,
        "epoch_seconds": timer.seconds,
        "seconds": seconds,
        "test_accuracy": float(accuracy),
        "train_flop_per_image": 3 * 2 * forward_macs(model),  # forward + two backward products
    }


def _load(data_dir: str, images: int):
    sys.path.insert(0, str(ROOT))
    from study.config import DataConfig
    from study.data import load_dataset

    full = 50_000  # CIFAR-10's training images; 80% of them train, the rest validate
    subset = None if images >= full * 0.8 else min(full, math.ceil(images / 0.8))
    data = load_dataset(DataConfig(data_dir=data_dir, subset=subset))
    return data


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(DEFAULT_DATA), help=f"image-folder dataset (default: {DEFAULT_DATA})")
    p.add_argument("--images", type=int, default=40_000, help="training images (default: 40000, all of them)")
    p.add_argument("--epochs", type=int, default=1, help="epochs per run (default: 1)")
    p.add_argument("--pairs", type=int, default=3, help="A B pairs (default: 3)")
    p.add_argument("--seed", type=int, default=1, help="initial weights and data order (default: 1)")
    p.add_argument("--json", metavar="FILE", help="also write every run's figures to FILE")
    p.add_argument("--worker", choices=PATHS, help=argparse.SUPPRESS)
    p.add_argument("--data-file", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.data_file, args.epochs, args.seed)), flush=True)
        return 0
    import numpy as np

    data = _load(args.data_dir, args.images)
    n = min(args.images, len(data.x_train))
    print(f"{data.describe()}; training on {n} images, {args.epochs} epoch(s) per run, {args.pairs} pairs", flush=True)
    print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}", flush=True)
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        # Workers read the arrays from a temporary file rather than decoding the archive again.
        data_file = str(Path(tmp) / "data.npz")
        np.savez(data_file, x=data.x_train[:n], y=data.y_train[:n], x_val=data.x_val, y_val=data.y_val,
                 x_test=data.x_test, y_test=data.y_test)  # fmt: skip
        del data
        for pair in range(args.pairs):
            for path in PATHS:
                peak = matmul_peak_gflops()
                cmd = [sys.executable, __file__, "--worker", path, "--data-file", data_file,
                       "--epochs", str(args.epochs), "--seed", str(args.seed)]  # fmt: skip
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode != 0:
                    print(out.stderr[-3000:], file=sys.stderr)
                    return 1
                run = json.loads(out.stdout.strip().splitlines()[-1])
                run.update(pair=pair + 1, matmul_gflops=peak)
                run["peak_fraction"] = run["images_per_s"] * run["train_flop_per_image"] / (peak * 1e9)
                runs.append(run)
                print(
                    f"pair {pair + 1} {path:8s}: {run['images_per_s']:7.0f} images/s "
                    f"({run['peak_fraction']:.0%} of a {peak:.0f} GFLOP/s matmul), "
                    f"{run['images_per_s_all_in']:.0f} images/s all in (first epoch and evaluation included), "
                    f"test accuracy {run['test_accuracy']:.4f}, {run['seconds']:.0f} s",
                    flush=True,
                )
    ratios = [b["images_per_s"] / a["images_per_s"] for a, b in zip(runs[0::2], runs[1::2])]
    all_in = [b["images_per_s_all_in"] / a["images_per_s_all_in"] for a, b in zip(runs[0::2], runs[1::2])]
    for path in PATHS:
        mine = [r for r in runs if r["path"] == path]
        print(
            f"{path}: median {statistics.median(r['images_per_s'] for r in mine):.0f} images/s, "
            f"median {statistics.median(r['peak_fraction'] for r in mine):.0%} of matmul peak, "
            f"test accuracy {statistics.mean(r['test_accuracy'] for r in mine):.4f} (mean of {len(mine)})"
        )
    print(f"training cost: {runs[0]['train_flop_per_image'] / 1e6:.1f} MFLOP per image (3 x forward)")
    print(f"all-in pairwise ratios (first epoch included): {', '.join(f'{r:.2f}' for r in all_in)}; "
          f"median {statistics.median(all_in):.2f}")
    steady = "epochs after the first" if args.epochs > 1 else "whole runs (one epoch)"
    print(f"pairwise ratios (study / notebook, {steady}): {', '.join(f'{r:.2f}' for r in ratios)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": runs, "ratios": ratios, "all_in": all_in}, indent=2))
    print(f"ratio: {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
