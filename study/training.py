"""The training path every command shares: uint8 images scaled batch by batch, a fixed data order per seed.

Images stay uint8 in memory and become float32 in [0, 1] one batch at a time; the order of the
batches depends only on the seed, so runs compared with each other see the same data.

Per Keras backend: on TensorFlow the batches go through a tf.data pipeline (`as_dataset`); on JAX
and PyTorch Keras reads them as a PyDataset, in the calling thread (benchmarks/README.md, section 5:
what was measured). Only the TensorFlow path imports TensorFlow, which the other backends may not
have. On a GPU, `study.devices` adds its levers against per-step overhead; on a CPU nothing changes.
"""
from __future__ import annotations

import contextlib
import functools
import math
from typing import TYPE_CHECKING

import keras
import numpy as np

from study import augment, devices
from study.config import BASELINE

if TYPE_CHECKING:
    import tensorflow as tf


class Batches(keras.utils.PyDataset):
    """Batches of uint8 images scaled to float32 [0, 1]; reshuffled each epoch from its own seed.

    Two `Batches` with the same seed yield the same order, which is what makes trials and
    optimizer comparisons see identical data.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 augmentation: str = BASELINE.augmentation):
        super().__init__()
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(len(x)) if shuffle else np.arange(len(x))
        # Augmentation (training batches only) draws from (seed, epoch) per image: its own stream, not the order's.
        self.seed, self.augmentation, self.epoch = seed, augmentation, 0
        self._draws = augment.draws(augmentation, len(x), seed, 0)

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i: int):
        idx = self.indices(i)
        if self._draws is None:
            return self.x[idx].astype(np.float32) / np.float32(255.0), self.y[idx]
        images = augment.apply(self.x[idx], self.batch_draws(i))
        return images.astype(np.float32) / np.float32(255.0), self.y[idx]

    def batch_draws(self, i: int) -> augment.Draws:
        """What augmentation gives the images of batch `i` this epoch: each image's own draw, whatever the batch."""
        return self._draws.of(self.indices(i))

    def indices(self, i: int) -> np.ndarray:
        """The images of batch `i` in the current order."""
        idx = self._order[i * self.batch_size : (i + 1) * self.batch_size]
        if self.shuffle:
            idx = np.sort(idx)  # faster gather; the batch's content is what is random
        return idx

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._order = self._rng.permutation(len(self.x))
        self.epoch += 1
        if self._draws is not None:
            self._draws = augment.draws(self.augmentation, len(self.x), self.seed, self.epoch)


class Joined:
    """Image arrays seen as one, without copying them: what `Batches` needs (`len(x)`, `x[indices]`).

    A final fit trains on the training and validation images together: joined, not concatenated,
    they need no second 0.15 GB copy of CIFAR-10.
    """

    def __init__(self, *parts: np.ndarray):
        self.parts = parts
        self.starts = np.cumsum([0, *(len(p) for p in parts)])
        self.shape = (int(self.starts[-1]), *parts[0].shape[1:])
        self.dtype = parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx):
        idx = np.asarray(idx)
        out = np.empty((len(idx), *self.shape[1:]), self.dtype)
        part = np.searchsorted(self.starts, idx, side="right") - 1
        for p, array in enumerate(self.parts):
            mask = part == p
            out[mask] = array[idx[mask] - self.starts[p]]
        return out


# What Batches makes of each pixel value: looked up on a device rather than divided there, because XLA's
# float32 division on a CPU is not NumPy's correctly rounded one (126 of the 256 values differed).
_SCALED = np.arange(256, dtype=np.float32) / np.float32(255.0)


class DeviceBatches(Batches):
    """`Batches` whose images live on JAX's default device: copied there once, each batch gathered and scaled there.

    On a GPU this replaces a host gather and a host-to-device copy per step by one small call; the
    batches are bit for bit those of `Batches` (same order, same float32 values).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 augmentation: str = BASELINE.augmentation):
        import jax

        super().__init__(x, y, batch_size, shuffle=shuffle, seed=seed, augmentation=augmentation)
        self._on_device = jax.device_put(np.asarray(x))
        self._scaled = jax.device_put(_SCALED)

    def __getitem__(self, i: int):
        idx = self.indices(i)
        if self._draws is None:
            return _gather_and_scale()(self._on_device, idx, self._scaled), self.y[idx]
        # Only the draws' small index arrays go to the device; the pixels move there.
        d = self.batch_draws(i)
        rows, cols = augment.source_indices(d, *self.x.shape[1:3])
        return _gather_augment_and_scale(d.pad)(self._on_device, idx, self._scaled, rows, cols), self.y[idx]


@functools.lru_cache(maxsize=None)
def _gather_and_scale():
    import jax

    return jax.jit(lambda x, idx, scaled: scaled[x[idx]])


@functools.lru_cache(maxsize=None)
def _gather_augment_and_scale(pad: int):
    import jax

    return jax.jit(lambda x, idx, scaled, rows, cols: scaled[augment.apply_jax(x[idx], rows, cols, pad)])


class Passes(keras.utils.PyDataset):
    """`batches` as Keras reads a PyDataset, one pass per epoch, in the same order as `as_dataset` gives them.

    Keras calls `on_epoch_begin` and `on_epoch_end` more often than once per epoch (building the model
    reads a batch inside a begin/end of its own), so the passes are counted from the reads instead:
    batch 0 asked for after a later batch starts the next pass, reshuffled first. That needs batches
    read in order, as Keras does with one worker (the default).
    """

    def __init__(self, batches: Batches):
        super().__init__()
        self.batches = batches
        self._read_past_first = False

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int):
        if i == 0 and self._read_past_first:
            self.batches.on_epoch_end()
            self._read_past_first = False
        self._read_past_first |= i > 0
        return self.batches[i]


def as_dataset(batches: Batches, epochs: int | None = 1) -> tf.data.Dataset:
    """`batches` for `epochs` passes as a tf.data pipeline: one NumPy call per batch, prefetched.

    Why not hand the PyDataset to Keras: Keras wraps it in `tf.data.Dataset.from_generator`, which
    cost a third more CPU per image than this on 2 cores (2.10 vs 1.56 ms; benchmarks/README.md). The batches are
    still made by `Batches.__getitem__` (same order, same scaling, no float copy of the data), and
    `on_epoch_end` is called between passes, so the order is exactly that of `Batches`. The first
    batch is read here, in the calling thread (as Keras does for a PyDataset), for the shapes.
    `epochs=None`: one pass, which Keras reads again for every epoch (as `Passes`, reshuffled each time).
    """
    import tensorflow as tf

    first_x, first_y = batches[0]
    steps = len(batches)
    epoch = [0]
    passes = Passes(batches) if epochs is None else None

    def get(step):
        e, i = divmod(int(step), steps)
        while epoch[0] < e:  # the pipeline reads ahead into the next pass: reshuffle first
            batches.on_epoch_end()
            epoch[0] += 1
        x, y = batches[i] if passes is None else passes[i]
        return x, y.astype(first_y.dtype, copy=False)

    def load(step):
        x, y = tf.numpy_function(
            get, [step], (tf.as_dtype(first_x.dtype), tf.as_dtype(first_y.dtype)), stateful=True
        )
        return tf.ensure_shape(x, (None, *first_x.shape[1:])), tf.ensure_shape(y, (None, *first_y.shape[1:]))

    # A plain sequential map keeps the NumPy calls in step order; 2 batches ahead hide their cost.
    # Nothing here is autotuned, and tf.data's autotuning thread made deleting the iterator at the
    # end of some fits take 3.3 s (benchmarks/README.md): off.
    options = tf.data.Options()
    options.autotune.enabled = False
    return tf.data.Dataset.range(steps * (epochs or 1)).map(load).prefetch(2).with_options(options)


def fit(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    epochs: int = BASELINE.epochs,
    initial_epoch: int = 0,
    batch_size: int = BASELINE.batch_size,
    seed: int = 0,
    callbacks: list | None = None,
    verbose: int | str = 2,
    augmentation: str = BASELINE.augmentation,
    schedule: str = BASELINE.schedule,
    schedule_epochs: int | None = None,
) -> keras.callbacks.History:
    """Train on uint8 images; the data order depends only on `seed`, so runs can be compared fairly.

    `augmentation` changes the training batches only; `schedule` the learning rate from epoch to epoch, over
    `schedule_epochs` (default `epochs`; Hyperband's rounds share the search's), logged as `learning_rate`.
    """
    steps = _set_steps_per_execution(model)
    callbacks = [*(callbacks or []), *schedule_callbacks(schedule, schedule_epochs or epochs)]
    if keras.config.backend() != "tensorflow":
        kind = DeviceBatches if devices.data_on_device() else Batches
        val = None if validation_data is None else Passes(kind(*validation_data, batch_size=batch_size))
        return model.fit(
            Passes(kind(x, y, batch_size, shuffle=True, seed=seed, augmentation=augmentation)),
            shuffle=False,  # Batches shuffles (Keras would shuffle the order of the batches)
            validation_data=val, epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks, verbose=verbose,
        )
    val = None
    if validation_data is not None:
        val = as_dataset(Batches(*validation_data, batch_size=batch_size))
    train = Batches(x, y, batch_size, shuffle=True, seed=seed, augmentation=augmentation)
    # One pipeline for all epochs; steps_per_epoch makes Keras keep its iterator between epochs. Several
    # steps per execution would read past an epoch's end (Keras runs whole executions): one pass per epoch.
    several = steps > 1
    with _releasing_graphs():
        return model.fit(
            as_dataset(train, epochs=None if several else max(1, epochs - initial_epoch)),
            steps_per_epoch=None if several else len(train),
            shuffle=False,  # Batches shuffles; Keras cannot shuffle a tf.data pipeline anyway
            validation_data=val,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=verbose,
        )


class CosineSchedule(keras.callbacks.LearningRateScheduler):
    """Cosine decay per epoch from the compiled learning rate to 0 over `epochs` (epoch e of E: lr (1 + cos(pi e/E))/2).

    The epoch is Keras's absolute one, so a Hyperband round continuing at epoch 5 of 15 goes on along the
    same curve. Keras logs the rate of each epoch as `learning_rate` in the history.
    """

    def __init__(self, epochs: int):
        super().__init__(self._rate)
        self.epochs, self.base = epochs, None

    def on_train_begin(self, logs=None):
        self.base = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def _rate(self, epoch: int, lr: float) -> float:
        return self.base * 0.5 * (1.0 + math.cos(math.pi * min(epoch, self.epochs) / self.epochs))


def schedule_callbacks(schedule: str, epochs: int) -> list[keras.callbacks.Callback]:
    """What `study.training.fit` adds for `schedule`: nothing for a constant learning rate."""
    if schedule == "constant":
        return []
    if schedule == "cosine":
        return [CosineSchedule(epochs)]
    raise ValueError(f"unknown schedule {schedule!r}")


def _set_steps_per_execution(model: keras.Model) -> int:
    """`devices.steps_per_execution()` on the compiled `model` (1, Keras's default, on a CPU); returns it."""
    steps = devices.steps_per_execution()
    if model.steps_per_execution != steps:
        model.steps_per_execution = steps
        model.train_function = model.test_function = model.predict_function = None  # traced for the old value
    return steps


@contextlib.contextmanager
def _releasing_graphs():
    """Let TensorFlow free the functions traced inside this block once their model is gone.

    TensorFlow keeps every custom gradient of a traced function in a global registry for good, and
    through it the whole function graph (tensorflow/tensorflow#97697; Keras's optimizer step
    registers two per trace), so `clear_session` frees nothing: each trial of a search kept about
    15 MB (benchmarks/README.md). The gradients are taken while tracing, so once `fit` has
    returned its entries are not needed; they are dropped at the end of the block.
    """
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "gradient_registry", None), "_registry", None)
    before = set(registry) if isinstance(registry, dict) else None
    try:
        yield
    finally:
        if before is not None:  # private TensorFlow state: if it ever changes shape, leave it alone
            for name in [n for n in registry if n not in before and n.startswith("CustomGradient-")]:
                del registry[name]


def predict_proba(model: keras.Model, x: np.ndarray, batch_size: int = BASELINE.batch_size) -> np.ndarray:
    """Class probabilities for uint8 images.

    In batches of the training size: 256 made the activations of each batch 4x larger, 0.06 GB more
    at the report's peak (as for the validation batches of a search; benchmarks/README.md).
    """
    batches = Batches(x, np.zeros(len(x), np.int32), batch_size)
    if keras.config.backend() != "tensorflow":
        return model.predict(Passes(batches), verbose=0)
    return model.predict(as_dataset(batches), verbose=0)
