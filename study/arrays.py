"""Images already in memory as a study's data, identified by a hash of their content.

`from_arrays` checks and converts them (uint8 pixels, or floats in [0, 1]; H×W or H×W×C), keeps them
for this process under their digest, and returns the `DataConfig` whose `data_dir` names them
("arrays:sha1:..."): config.json, resume and the refusals then treat them as they treat a path. A process that did not
receive them (a `--parallel` search's chief and workers) cannot read them: refused in one line.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from study.config import DataConfig, StudyError

PREFIX = "arrays:sha1:"  # DataConfig.data_dir of arrays: "arrays:sha1:<hex digest of pixels, labels, class names>"


class Arrays(NamedTuple):
    x_train: np.ndarray  # uint8 (n, height, width, channels)
    y_train: np.ndarray  # int32 (n,)
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]


_HELD: dict[str, Arrays] = {}  # this process's arrays, by digest


def from_arrays(x_train, y_train, x_test, y_test, class_names: Sequence[str] | None = None, *,
                subset: int | None = None, split_seed: int = DataConfig.split_seed) -> DataConfig:
    """The data of a study from arrays in memory: the training images (split 80/20 into training and validation,
    stratified, as a `--data-dir` is) and the test images, with their integer labels.

    Pixels: uint8 (0-255), or floats already in [0, 1] (rounded to the nearest of 256 levels, as study keeps
    images). `class_names`: one per label (default "0", "1", ...).
    """
    x_train, x_test = _pixels(x_train, "x_train"), _pixels(x_test, "x_test")
    y_train, y_test = _labels(y_train, len(x_train), "y_train"), _labels(y_test, len(x_test), "y_test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise StudyError(f"x_train's images are {_shape(x_train)}, x_test's {_shape(x_test)}: they must match")
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    names = tuple(str(c) for c in (class_names if class_names is not None else range(n_classes)))
    if len(names) < n_classes:
        raise StudyError(f"class_names names {len(names)} classes, the labels go up to {n_classes - 1}")
    if len(set(names)) != len(names):
        raise StudyError(f"class_names lists a name twice: {list(names)}")
    digest = hashlib.sha1()
    for part in (x_train, y_train, x_test, y_test):
        digest.update(str(part.shape).encode())
        digest.update(np.ascontiguousarray(part).tobytes())
    digest.update("\0".join(names).encode())
    key = PREFIX + digest.hexdigest()
    _HELD[key] = Arrays(x_train, y_train, x_test, y_test, names)
    height, width, channels = x_train.shape[1:]
    return DataConfig(data_dir=key, subset=subset, image_size=(height, width), channels=channels,
                      split_seed=split_seed)


def held(key: str) -> Arrays:
    """The arrays named by `key`; StudyError where this process was not given them."""
    if key not in _HELD:
        raise StudyError(f"the {key[:24]}... are not in this process: they exist only where "
                         "study.from_arrays was called (save them as an archive with tools/make_archive.py for "
                         "processes of their own, such as a --parallel search)")
    return _HELD[key]


def hold(key: str, arrays: Arrays) -> None:
    """Keep arrays received from elsewhere (a cluster's worker) under their key."""
    _HELD[key] = arrays


def _pixels(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:  # H×W: one channel
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise StudyError(f"{name} must be images of H×W or H×W×C with C 1 or 3, got shape {x.shape}")
    if len(x) == 0:
        raise StudyError(f"{name} holds no image")
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        if not (np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
            raise StudyError(f"{name} holds floats outside [0, 1] (from {x.min():g} to {x.max():g}): give uint8 "
                             "pixels (0-255) or floats already scaled to [0, 1]")
        return np.round(x * 255).astype(np.uint8)
    if np.issubdtype(x.dtype, np.integer):
        if x.min() < 0 or x.max() > 255:
            raise StudyError(f"{name} holds integers outside 0-255 (from {x.min()} to {x.max()})")
        return x.astype(np.uint8)
    raise StudyError(f"{name} must hold numbers, got {x.dtype}")


def _labels(y, n: int, name: str) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    if len(y) != n:
        raise StudyError(f"{name} has {len(y)} labels for {n} images")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise StudyError(f"{name} must be integer class labels from 0, got {y.dtype} from {y.min()}")
    return y.astype(np.int32)


def _shape(x: np.ndarray) -> str:
    return "x".join(map(str, x.shape[1:]))


def named(data_dir: str | None) -> bool:
    """Whether a data_dir names arrays in memory rather than a path."""
    return bool(data_dir) and data_dir.startswith(PREFIX)
