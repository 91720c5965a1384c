"""Keras's backends on this CPU, side by side: the same training on TensorFlow, JAX and PyTorch, interleaved.

    python benchmarks/backends_cpu.py --images 4000 --epochs 3 --rounds 3     # ~15 min on 2 busy cores

Each run is a fresh process with KERAS_BACKEND set (TensorFlow made unimportable on the other
backends, as on a machine without it) and the commands' process settings (`study.runtime.configure`),
training the baseline CNN from the same initial seed with `study.training.fit` on the same real
images (batch 64, no validation). Variants:

- `tensorflow`: the study's TensorFlow path (tf.data pipeline);
- `jax`: the study's JAX path (Keras reads `study.training.Batches` as a PyDataset, in the calling thread);
- `jax-arrays`: Keras's own array input on JAX (a float32 copy of the images, Keras's shuffling), the
  alternative the JAX path was chosen against;
- `torch`: the study's path on PyTorch, when PyTorch is installed.

images/s counts the epochs after the first; the first epoch's seconds (JAX compiles there, with its
compilation cache off) and the CPU time per image (os.times, all threads) are printed too. The
machine may be shared, so the variants alternate A B C A B C, and each run is also given as a ratio
to TensorFlow's run of the same round. The CPU model comes from lscpu.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
VARIANTS = {"tensorflow": "tensorflow", "jax": "jax", "jax-arrays": "jax", "torch": "torch"}


def _worker(variant: str, data_file: str, epochs: int) -> dict:
    """One training along `variant`; runs in its own process."""
    if VARIANTS[variant] != "tensorflow":
        sys.modules["tensorflow"] = None  # as where TensorFlow is not installed
    sys.path.insert(0, str(ROOT))
    from study import runtime

    runtime.configure()
    runtime.quiet_tensorflow()
    import keras
    import numpy as np

    from study import training
    from study.model import build_model

    data = np.load(data_file)
    x, y = data["x"], data["y"]
    keras.utils.set_random_seed(1)
    model = build_model(x.shape[1:], 10)
    seconds, cpu = [], []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0, self.c0 = time.perf_counter(), os.times()

        def on_epoch_end(self, epoch, logs=None):
            c1 = os.times()
            seconds.append(time.perf_counter() - self.t0)
            cpu.append(c1.user + c1.system - self.c0.user - self.c0.system)

    if variant == "jax-arrays":
        x = x.astype(np.float32) / np.float32(255.0)
        model.fit(x, y, batch_size=64, epochs=epochs, callbacks=[Clock()], verbose=0)
    else:
        training.fit(model, x, y, epochs=epochs, seed=1, callbacks=[Clock()], verbose=0)
    return {"variant": variant, "backend": keras.config.backend(), "images": len(x), "first_epoch": seconds[0],
            "images_per_s": len(x) * (epochs - 1) / sum(seconds[1:]),
            "cpu_ms_per_image": 1000 * sum(cpu[1:]) / (len(x) * (epochs - 1))}


def _run(variant: str, data_file: str, epochs: int) -> dict:
    env = {**os.environ, "KERAS_BACKEND": VARIANTS[variant], "JAX_COMPILATION_CACHE_DIR": ""}  # compile every time
    proc = subprocess.run([sys.executable, __file__, "--worker", variant, "--data", data_file, "--epochs", str(epochs)],
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        raise SystemExit(f"{variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.splitlines()[-1])


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "lscpu unavailable"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    keys = ("Model name", "CPU family", "Model", "CPU(s)", "Flags")
    f = {k: fields.get(k, "?").strip() for k in keys}
    simd = " ".join(s for s in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16") if s in f["Flags"].split())
    return f"{f['Model name']} (family {f['CPU family']}, model {f['Model']}), {f['CPU(s)']} CPUs, {simd}"


def _data(args, folder: Path) -> str:
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from study.config import DataConfig
    from study.data import load_dataset

    d = load_dataset(DataConfig(data_dir=str(args.data_dir), subset=round(args.images / 0.8)), keep_test=False)
    path = folder / "data.npz"
    np.savez(path, x=d.x_train[: args.images], y=d.y_train[: args.images])
    return str(path)


def _summary(runs: list[dict], variants: list[str]) -> None:
    print("\nvariant      images/s median (min-max)   CPU ms/image   first epoch s   ratio to tensorflow, same round")
    for v in variants:
        mine = [r for r in runs if r["variant"] == v]
        rates = [r["images_per_s"] for r in mine]
        ratios = [r["images_per_s"] / t["images_per_s"] for r, t in
                  zip(mine, [r for r in runs if r["variant"] == "tensorflow"])]
        print(f"{v:<12} {statistics.median(rates):>6.0f} ({min(rates):.0f}-{max(rates):.0f})"
              f"{statistics.median(r['cpu_ms_per_image'] for r in mine):>16.2f}"
              f"{statistics.median(r['first_epoch'] for r in mine):>16.1f}   "
              + ", ".join(f"{x:.2f}" for x in ratios))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=3, help="per run; the first is not counted (default 3)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--variants", default=",".join(v for v in VARIANTS if util.find_spec(VARIANTS[v])))
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    p.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.data, args.epochs)))
        return 0
    variants = args.variants.split(",")
    print(f"CPU: {_cpu()}")
    print(f"{args.images} images x {args.epochs} epochs per run, {args.rounds} rounds of {', '.join(variants)}")
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        data_file = _data(args, Path(folder))
        for round_ in range(1, args.rounds + 1):
            for v in variants:
                r = _run(v, data_file, args.epochs)
                runs.append(r)
                print(f"round {round_} {v:<11} {r['images_per_s']:>6.0f} images/s, {r['cpu_ms_per_image']:.2f} ms "
                      f"CPU/image, first epoch {r['first_epoch']:.1f} s  ({time.strftime('%H:%M:%S')})", flush=True)
    _summary(runs, variants)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
