"""The accelerator Keras trains on, and the levers against per-step overhead that a study uses there.

On a GPU the notebook's CNN is bound by per-step overhead, not arithmetic: a step of batch 64 is
about 1.7 GFLOP, well under a millisecond of a modern GPU, while Keras's dispatch of a step costs
about as much. Three levers, used on a GPU only, so that a CPU's behaviour and numbers stay as they
were (there the arithmetic dominates: benchmarks/README.md):

- `steps_per_execution`: Keras runs several steps per call (one graph call on TensorFlow; on JAX
  and PyTorch a loop with fewer callbacks and state syncs);
- data on the device (JAX): the uint8 images copied to the GPU once, each batch gathered and scaled
  there, instead of a host batch copied each step;
- the report's retrainings side by side: several processes share the GPU (`study.parallel`).

None changes what is computed: the same steps, on the same batches, from the same initial weights.
The environment variables STUDY_STEPS_PER_EXECUTION and STUDY_DATA_ON_DEVICE (0 or 1) override the
choice, for benchmarks and for tests that run the GPU paths on a CPU.
"""
from __future__ import annotations

import functools
import os

from study.config import StudyError

# Measured on one H100 with JAX (benchmarks/README.md, section 6): 8, 32 and 128 steps per execution gave the
# same images/s within the noise (1.3-1.7x Keras's default), so the fewest, which keeps NaN losses and the
# epoch clock checked every 8 batches; side by side, 8 trainings gave 5.2x one, 12 and 16 no more.
GPU_STEPS_PER_EXECUTION = 8
GPU_SIDE_BY_SIDE = 8


@functools.lru_cache(maxsize=None)
def accelerator() -> str:
    """"gpu" (or "tpu") when Keras's backend trains on one, else "cpu". Imports the backend."""
    import keras

    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
    if backend == "jax":
        import jax

        return jax.default_backend()  # "cpu", "gpu" or "tpu"
    if backend == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    return "cpu"


def accelerator_name() -> str | None:
    """The model of the GPU (or TPU) Keras trains on, e.g. "NVIDIA H200"; None on a CPU. Imports the backend."""
    if accelerator() == "cpu":
        return None
    import keras

    backend = keras.config.backend()
    try:
        if backend == "jax":
            import jax

            return str(jax.devices()[0].device_kind)
        if backend == "tensorflow":
            import tensorflow as tf

            details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
            return str(details.get("device_name") or "GPU")
        if backend == "torch":
            import torch

            return str(torch.cuda.get_device_name(0))
    except Exception:  # a driver that cannot say: the kind is still an accelerator
        pass
    return accelerator().upper()


def _setting(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise StudyError(f"{name} must be a whole number, got {text!r}") from None
    if value < 0:
        raise StudyError(f"{name} must be >= 0, got {value}")
    return value


def steps_per_execution() -> int:
    """Training steps Keras runs per call: 1 on a CPU, GPU_STEPS_PER_EXECUTION on an accelerator.

    Always 1 on PyTorch, whose Keras trainer refuses more (keras/src/backend/torch/trainer.py).
    """
    import keras

    if keras.config.backend() == "torch":
        return 1
    chosen = _setting("STUDY_STEPS_PER_EXECUTION")
    if chosen is not None:
        return max(1, chosen)
    return 1 if accelerator() == "cpu" else GPU_STEPS_PER_EXECUTION


def data_on_device() -> bool:
    """Whether the images live on the accelerator (JAX only: on TensorFlow tf.data feeds the device itself)."""
    chosen = _setting("STUDY_DATA_ON_DEVICE")
    if chosen is not None:
        return bool(chosen)
    import keras

    return keras.config.backend() == "jax" and accelerator() != "cpu"


def side_by_side(parallel: int | None, jobs: int) -> int:
    """How many retrainings to run at once: `parallel` when given, else GPU_SIDE_BY_SIDE on a GPU (at most half
    the cores), 1 on a CPU.

    On a CPU the cores are already busy with one training: two at once would each run at half speed.
    """
    if parallel is None:
        # Each training keeps a core busy dispatching its steps; 8 side by side were measured with 16 cores.
        parallel = 1 if accelerator() == "cpu" else min(GPU_SIDE_BY_SIDE, max(1, (os.cpu_count() or 1) // 2))
    return max(1, min(parallel, jobs))
