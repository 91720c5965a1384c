"""What augmentation costs on a CPU: an epoch of training with and without it, interleaved A B B A.

    python benchmarks/augment_cost.py --images 10000 --pairs 3 [--augmentation flip_translate]

Two measurements on the same images (a stratified subset of CIFAR-10's training split):
- the batch pipeline alone: images/s of `study.training.Batches` producing one epoch's training batches,
  with and without augmentation (what augmentation adds to the host's work per image);
- training: seconds of an epoch of `study.training.fit` (the baseline CNN, batch 64), the epoch after
  the first (which also traces the step), with and without augmentation, alternating A B B A in one
  process, each run from the same initial weights. The machine is shared and its speed drifts, so the
  result is the median of the pairwise ratios.

The line before the last bounds it from the pipeline alone: the host time augmentation adds per image, as
a share of a plain epoch, if none of it overlapped with training. The last line is
`augmentation cost: X.X% of an epoch` (median of with / without - 1).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


class _EpochTimer:
    """Seconds of each epoch (a Keras callback, made when Keras is imported)."""

    @staticmethod
    def make():
        import keras

        class Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds, self.cpu_seconds, self._start = [], [], (0.0, 0.0)

            def on_epoch_begin(self, epoch, logs=None):
                self._start = (time.perf_counter(), time.process_time())

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start[0])
                self.cpu_seconds.append(time.process_time() - self._start[1])

        return Timer()


def pipeline_rate(x, y, augmentation: str, batch_size: int = 64) -> float:
    """Images/s of one epoch of training batches, made on the host."""
    from study.training import Batches

    batches = Batches(x, y, batch_size, shuffle=True, seed=1, augmentation=augmentation)
    start = time.perf_counter()
    for i in range(len(batches)):
        batches[i]
    return len(x) / (time.perf_counter() - start)


def epoch_seconds(data, augmentation: str, seed: int = 1) -> tuple[float, float]:
    """Wall and CPU seconds (all of this process's threads) of the second epoch of a 2-epoch fit of the baseline
    CNN: on a shared machine the CPU seconds are what the other processes disturb least."""
    import keras

    from study.report import initial_model
    from study.training import fit

    keras.backend.clear_session()
    model = initial_model(data.input_shape, data.num_classes, {}, seed)
    timer = _EpochTimer.make()
    fit(model, data.x_train, data.y_train, epochs=2, batch_size=64, seed=seed, callbacks=[timer], verbose=0,
        augmentation=augmentation)
    return timer.seconds[-1], timer.cpu_seconds[-1]


def cpu_model() -> str:
    lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name")), "unknown CPU")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=str(DEFAULT_DATA))
    p.add_argument("--images", type=int, default=10000, help="training images (a stratified subset)")
    p.add_argument("--pairs", type=int, default=3, help="A B pairs of training runs")
    p.add_argument("--augmentation", default="flip_translate", choices=("flip", "flip_translate"))
    args = p.parse_args(argv)

    from study import runtime
    from study.config import DataConfig
    from study.data import load_dataset

    runtime.configure()
    # --images counts training images; the subset is taken before the 80/20 validation split.
    data = load_dataset(DataConfig(data_dir=args.data_dir, subset=round(args.images / 0.8)), keep_test=False)
    print(f"{cpu_model()}; {len(data.y_train)} training images, batch 64, backend {runtime.keras_backend()}")
    rates = {}
    for name in ("none", args.augmentation):
        rates[name] = max(pipeline_rate(data.x_train, data.y_train, name) for _ in range(3))
        print(f"pipeline, {name}: {rates[name]:,.0f} images/s (best of 3)")
    extra = 1 / rates[args.augmentation] - 1 / rates["none"]  # host seconds augmentation adds per image
    ratios, cpu_ratios, plain_rates = [], [], []
    for pair in range(args.pairs):
        if pair % 2:  # A B, then B A: whatever the order favours cancels out
            augmented, plain = epoch_seconds(data, args.augmentation), epoch_seconds(data, "none")
        else:
            plain, augmented = epoch_seconds(data, "none"), epoch_seconds(data, args.augmentation)
        ratios.append(augmented[0] / plain[0])
        cpu_ratios.append(augmented[1] / plain[1])
        plain_rates.append(len(data.y_train) / plain[0])
        print(f"pair {pair + 1}: epoch {plain[0]:.2f}s without, {augmented[0]:.2f}s with {args.augmentation} "
              f"({len(data.y_train) / plain[0]:,.0f} vs {len(data.y_train) / augmented[0]:,.0f} images/s), "
              f"ratio {ratios[-1]:.3f}; CPU {plain[1]:.2f}s vs {augmented[1]:.2f}s, ratio {cpu_ratios[-1]:.3f}")
    print(f"CPU time of an epoch: {100 * (statistics.median(cpu_ratios) - 1):+.1f}% with {args.augmentation} "
          "(median of the pairs)")
    # If none of the augmentation's host work overlapped with training (on TensorFlow it runs in the input
    # pipeline's thread, ahead of the step), it would add this share to an epoch: an upper bound.
    bound = extra * statistics.median(plain_rates)
    print(f"augmentation's host work: {1e6 * extra:.1f} us per image = {100 * bound:.1f}% of an epoch "
          "if none of it overlapped with training")
    print(f"augmentation cost: {100 * (statistics.median(ratios) - 1):.1f}% of an epoch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
