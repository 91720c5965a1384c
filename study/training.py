"""The training path every command shares: uint8 images scaled batch by batch, a fixed data order per seed.

Images stay uint8 in memory and become float32 in [0, 1] one batch at a time; the order of the
batches depends only on the seed, so runs compared with each other see the same data.
"""
from __future__ import annotations

import contextlib
import math

import keras
import numpy as np
import tensorflow as tf

from study.config import BASELINE


class Batches(keras.utils.PyDataset):
    """Batches of uint8 images scaled to float32 [0, 1]; reshuffled each epoch from its own seed.

    Two `Batches` with the same seed yield the same order, which is what makes trials and
    optimizer comparisons see identical data.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool = False, seed: int = 0):
        super().__init__()
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(len(x)) if shuffle else np.arange(len(x))

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i: int):
        idx = self._order[i * self.batch_size : (i + 1) * self.batch_size]
        if self.shuffle:
            idx = np.sort(idx)  # faster gather; the batch's content is what is random
        return self.x[idx].astype(np.float32) / np.float32(255.0), self.y[idx]

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._order = self._rng.permutation(len(self.x))


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


def as_dataset(batches: Batches, epochs: int = 1) -> tf.data.Dataset:
    """`batches` for `epochs` passes as a tf.data pipeline: one NumPy call per batch, prefetched.

    Why not hand the PyDataset to Keras: Keras wraps it in `tf.data.Dataset.from_generator`, which
    cost a third more CPU per image than this on 2 cores (2.10 vs 1.56 ms; benchmarks/README.md). The batches are
    still made by `Batches.__getitem__` (same order, same scaling, no float copy of the data), and
    `on_epoch_end` is called between passes, so the order is exactly that of `Batches`. The first
    batch is read here, in the calling thread (as Keras does for a PyDataset), for the shapes.
    """
    first_x, first_y = batches[0]
    steps = len(batches)
    epoch = [0]

    def get(step):
        e, i = divmod(int(step), steps)
        while epoch[0] < e:  # the pipeline reads ahead into the next pass: reshuffle first
            batches.on_epoch_end()
            epoch[0] += 1
        x, y = batches[i]
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
    return tf.data.Dataset.range(steps * epochs).map(load).prefetch(2).with_options(options)


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
) -> keras.callbacks.History:
    """Train on uint8 images; the data order depends only on `seed`, so runs can be compared fairly."""
    val = None
    if validation_data is not None:
        val = as_dataset(Batches(*validation_data, batch_size=batch_size))
    train = Batches(x, y, batch_size, shuffle=True, seed=seed)
    # One pipeline for all epochs; steps_per_epoch makes Keras keep its iterator between epochs.
    with _releasing_graphs():
        return model.fit(
            as_dataset(train, epochs=max(1, epochs - initial_epoch)),
            steps_per_epoch=len(train),
            shuffle=False,  # Batches shuffles; Keras cannot shuffle a tf.data pipeline anyway
            validation_data=val,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=verbose,
        )


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
    return model.predict(as_dataset(Batches(x, np.zeros(len(x), np.int32), batch_size)), verbose=0)
