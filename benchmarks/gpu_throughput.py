"""Training throughput on one GPU (or any device): Keras's per-step overhead, its cut, and trainings side by side.

    python benchmarks/gpu_throughput.py            # on a GPU, a few minutes; figures in benchmarks/README.md
    python benchmarks/gpu_throughput.py --smoke    # any machine, about a minute on 2 CPU cores: the script works

On whichever Keras backend is installed (KERAS_BACKEND, as for the commands), it prints the device,
the backend and the versions, then:

1. images/s of one training of the baseline CNN (batch 64, `study.training.fit`) at Keras's default
   settings (1 step per execution, batches copied from the host each step) and with the overhead
   cut of `study.devices`: several steps per execution (--steps, default 1, 8, 32 and 128), each
   with batches from the host and with the images kept on the device where the backend allows it
   (JAX); PyTorch's Keras trainer allows 1 step per execution only;
2. k trainings side by side (--ks, default 1, 2, 4 and 8), each in its own process, at Keras's
   defaults and at the study's settings for the device: images/s of all k together and of each;
3. the wall time of one 15-epoch baseline on 40,000 images, validating on 10,000 after every epoch
   as the report's retrainings do, at the study's settings (model built, compiled, trained).

Every training runs in a fresh process. images/s counts the timed epochs that follow a warm-up epoch
of the same model on the same images (compilation excluded); the side-by-side trainings start their timed epochs
together. The images are random uint8 (the speed does not depend on the pixels; --data-dir takes
real ones through `study.data`).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=20_000, help="training images of each timed run (default 20,000)")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs of each run (default 3)")
    p.add_argument("--steps", default="1,8,32,128", help="steps per execution to try (default 1,8,32,128)")
    p.add_argument("--ks", default="1,2,4,8", help="trainings side by side (default 1,2,4,8)")
    p.add_argument("--full-images", type=int, default=40_000, help="the full baseline's training images (40,000)")
    p.add_argument("--full-epochs", type=int, default=15, help="the full baseline's epochs (15)")
    p.add_argument("--data-dir", help="real images (study.data) instead of random ones")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks that the script runs, anywhere")
    return p


# --- what runs in each worker process -----------------------------------------------------------------

def _train(job: dict, data_file: str, barrier, results) -> None:
    """One training, timed after a warm-up epoch; puts its figures on `results`."""
    os.environ.update(job["env"])  # STUDY_* settings, before study.devices reads them
    from study import runtime

    runtime.configure()
    runtime.quiet_tensorflow()
    import keras
    import numpy as np

    from study import devices, training
    from study.model import build_model

    data = np.load(data_file)
    x, y = data["x"][: job["images"]], data["y"][: job["images"]]
    val = (data["x_val"], data["y_val"]) if job.get("validate") else None
    started = time.monotonic()
    keras.utils.set_random_seed(1)
    model = build_model(x.shape[1:], 10)
    if not job.get("cold"):  # an epoch on the same batches first (every shape compiled): the timed ones are steady
        training.fit(model, x, y, epochs=1, verbose=0)
    barrier.wait()
    start = time.monotonic()
    training.fit(model, x, y, validation_data=val, epochs=job["epochs"], seed=1, verbose=0)
    end = time.monotonic()
    results.put({"start": start, "end": end, "images": len(x) * job["epochs"], "all_in": end - started,
                 "steps": model.steps_per_execution, "on_device": devices.data_on_device(),
                 "device": _device(), "accelerator": devices.accelerator()})


def _device() -> str:
    """The device Keras trains on, as its backend names it."""
    import keras

    backend = keras.config.backend()
    try:
        if backend == "jax":
            import jax

            d = jax.devices()[0]
            return f"{d.platform}: {getattr(d, 'device_kind', d)}"
        if backend == "torch":
            import torch

            return f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            return f"gpu: {tf.config.experimental.get_device_details(gpus[0]).get('device_name')}" if gpus else "cpu"
    except Exception as e:  # a description only
        return f"unknown ({type(e).__name__})"
    return "cpu"


def _run(jobs: list[dict], data_file: str) -> list[dict]:
    """`jobs` at once, one spawned process each, their timed parts started together."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(len(jobs)), context.Queue()
    procs = [context.Process(target=_train, args=(job, data_file, barrier, results)) for job in jobs]
    for p in procs:
        p.start()
    out = [results.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"a worker failed (exit {p.exitcode})")
    return out


# --- the measurements ------------------------------------------------------------------------------------

def _data(args, folder: Path) -> str:
    """Training and validation images saved for the workers: random uint8, or --data-dir's."""
    import numpy as np

    n = max(args.images, args.full_images)
    if args.data_dir:
        from study.config import DataConfig
        from study.data import load_dataset

        d = load_dataset(DataConfig(data_dir=args.data_dir), keep_test=False)
        x, y, x_val, y_val = d.x_train, d.y_train, d.x_val, d.y_val
    else:
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 256, (n, 32, 32, 3), np.uint8), rng.integers(0, 10, n).astype(np.int32)
        x_val, y_val = x[: n // 4], y[: n // 4]  # what validating 10,000 images per 40,000 costs
    path = folder / "data.npz"
    np.savez(path, x=x, y=y, x_val=x_val, y_val=y_val)
    return str(path)


def _steps(n: int) -> str:
    return f"{n} step{'s' if n > 1 else ''}"


def _rate(result: dict) -> float:
    return result["images"] / (result["end"] - result["start"])


DEFAULTS = {"STUDY_STEPS_PER_EXECUTION": "1", "STUDY_DATA_ON_DEVICE": "0"}  # Keras's own: 1 step, host batches


def one_training(args, data_file: str) -> None:
    default = _run([{"env": DEFAULTS, "images": args.images, "epochs": args.epochs}], data_file)[0]
    print(f"device: {default['device']}")
    print(f"\n1. one training, {args.images:,} images x {args.epochs} epochs after a warm-up epoch:")
    print(f"   Keras's defaults (1 step per execution, batches from the host): {_rate(default):,.0f} images/s")
    if _backend() == "torch":
        print("   (PyTorch: Keras allows 1 step per execution only, and the images stay on the host)")
        return
    for steps in [int(s) for s in args.steps.split(",")]:
        for on_device in ("0", "1"):
            env = {"STUDY_STEPS_PER_EXECUTION": str(steps), "STUDY_DATA_ON_DEVICE": on_device}
            if (on_device == "1" and _backend() != "jax") or env == DEFAULTS:
                continue  # data on the device is the JAX path's (study.devices)
            r = _run([{"env": env, "images": args.images, "epochs": args.epochs}], data_file)[0]
            where = "images on the device" if r["on_device"] else "batches from the host"
            print(f"   {_steps(steps)} per execution, {where}: {_rate(r):,.0f} images/s "
                  f"({_rate(r) / _rate(default):.2f}x)")


def side_by_side(args, data_file: str) -> None:
    settings = {"Keras's defaults": DEFAULTS, "the study's settings": {}}
    if args.smoke:
        del settings["Keras's defaults"]  # one setting is enough to check the code
    for name, env in settings.items():
        print(f"\n2. k trainings side by side, each {args.images:,} images x {args.epochs} epochs, {name}:")
        single = None
        for k in [int(s) for s in args.ks.split(",")]:
            rs = _run([{"env": env, "images": args.images, "epochs": args.epochs} for _ in range(k)], data_file)
            total = sum(r["images"] for r in rs) / (max(r["end"] for r in rs) - min(r["start"] for r in rs))
            single = single or (total if k == 1 else None)
            each = statistics.median(_rate(r) for r in rs)
            versus = f" ({total / single:.2f}x one)" if single else ""
            print(f"   k={k}: {total:,.0f} images/s together{versus}, {each:,.0f} each (median); "
                  f"{_steps(rs[0]['steps'])} per execution, images {_where(rs[0])}", flush=True)


def _where(result: dict) -> str:
    return "on the device" if result["on_device"] else "from the host"


def full_baseline(args, data_file: str) -> None:
    job = {"env": {}, "images": args.full_images, "epochs": args.full_epochs, "validate": True, "cold": True}
    r = _run([job], data_file)[0]
    print(f"\n3. one {args.full_epochs}-epoch baseline on {args.full_images:,} images, validating on "
          f"{args.full_images // 4:,} each epoch, the study's settings ({_steps(r['steps'])} per execution, "
          f"images {_where(r)}):")
    print(f"   wall {r['all_in']:.1f} s (model built, compiled, trained); {r['end'] - r['start']:.1f} s in fit")


def _backend() -> str:
    from study import runtime

    return runtime.keras_backend()


def _header() -> None:
    from study import runtime

    gpu = "none found by nvidia-smi"
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip() or gpu
    except (OSError, subprocess.TimeoutExpired):
        pass
    versions = []
    for package in ("keras", "tensorflow", "jax", "jaxlib", "torch", "numpy"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    print(f"GPU: {gpu}")
    print(f"CPU: {runtime.cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}")
    print(f"Keras backend: {_backend()}; {', '.join(versions)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.smoke:  # every code path once, on a few batches
        args.images, args.epochs, args.steps, args.ks = 192, 1, "2", "2"
        args.full_images, args.full_epochs = 192, 1
    from study import runtime

    runtime.configure()  # the workers inherit its GPU-sharing settings
    _header()
    with tempfile.TemporaryDirectory() as folder:
        data_file = _data(args, Path(folder))
        one_training(args, data_file)
        side_by_side(args, data_file)
        full_baseline(args, data_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
