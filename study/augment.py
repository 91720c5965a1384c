"""Augmentation of the training images: random horizontal flips, and shifts of up to 4 pixels with zeros padded in.

What each image of an epoch gets is drawn from (seed, epoch) alone and indexed by the image (its index in the
training array), so runs of the same seed give every image the same flip and shift in every epoch, whatever
their batch size, backend or device. It happens in the batch pipeline, to
the training batches only (never validation, test or prediction), so a saved model has no augmentation
layer. The pixels move as uint8, before scaling: in NumPy on the host, or in JAX on the device where the
images live there (`study.training.DeviceBatches`), a gather through padded coordinates; both give the
same pixels.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from study.config import AUGMENTATIONS

PAD = 4  # the largest shift, in pixels, of flip_translate
_STREAM = 0xA06  # keeps these draws apart from the data order's, which also start from the seed


class Draws(NamedTuple):
    """What every image of one epoch gets, by its index: a flip, and a shift (rows, columns)."""

    flips: np.ndarray  # (n,) bool
    shifts: np.ndarray  # (n, 2) int, in [-pad, pad]
    pad: int

    def of(self, images: np.ndarray) -> Draws:
        """The draws of these images (indices), in their order: a batch's."""
        return Draws(self.flips[images], self.shifts[images], self.pad)


def draws(augmentation: str, n: int, seed: int, epoch: int) -> Draws | None:
    """The draws of epoch `epoch` for `n` images; None for "none"."""
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {augmentation!r}")
    if augmentation == "none":
        return None
    rng = np.random.default_rng([seed, epoch, _STREAM])
    flips = rng.random(n) < 0.5
    if augmentation == "flip":
        return Draws(flips, np.zeros((n, 2), np.int64), 0)
    return Draws(flips, rng.integers(-PAD, PAD + 1, size=(n, 2)), PAD)


def source_indices(d: Draws, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """For each output pixel, the row and column of the padded image it is read from: (B, H) and (B, W).

    The image shifted by (dy, dx), then flipped: output (i, j) reads input (i - dy, j - dx), or
    (i - dy, W - 1 - j - dx) when flipped; the padding offsets both by `pad`, so a shifted-in pixel reads zero.
    """
    rows = np.arange(height)[None, :] - d.shifts[:, :1] + d.pad
    cols = np.arange(width)[None, :]
    cols = np.where(d.flips[:, None], width - 1 - cols, cols) - d.shifts[:, 1:] + d.pad
    return rows.astype(np.int32), cols.astype(np.int32)


def apply(images: np.ndarray, d: Draws) -> np.ndarray:
    """A batch of uint8 images (B, H, W, C), augmented as `d` says (NumPy; the same pixels as `source_indices`).

    A window of the zero-padded batch per image, then the flips at once: a few times faster on a CPU than
    one gather through `source_indices` (benchmarks/README.md, "Augmentation on a CPU").
    """
    n, height, width, channels = images.shape
    p = d.pad
    padded = np.zeros((n, height + 2 * p, width + 2 * p, channels), images.dtype)
    padded[:, p : p + height, p : p + width] = images
    out = np.empty_like(images)
    for k, (dy, dx) in enumerate(d.shifts.tolist()):
        out[k] = padded[k, p - dy : p - dy + height, p - dx : p - dx + width]
    out[d.flips] = out[d.flips, :, ::-1]
    return out


def apply_jax(images, rows, cols, pad: int):
    """`apply` in JAX (inside a jitted function: the pixels never leave the device); rows, cols from source_indices."""
    import jax.numpy as jnp

    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0))) if pad else images
    return padded[jnp.arange(images.shape[0])[:, None, None], rows[:, :, None], cols[:, None, :]]
