"""Shared fixtures: agg backend, seeding, and tiny image-folder datasets written into tmp_path."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib

matplotlib.use("agg")

from pathlib import Path

import numpy as np
import pytest

SHARED_CIFAR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
CLASSES = ("cat", "dog", "frog")


def write_images(folder: Path, n: int, *, seed: int, size=(32, 32), mode="RGB", fmt="png") -> None:
    """n small images whose mean colour depends on the folder, so a model can learn something."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 256, size=3)
    for i in range(n):
        pixels = np.clip(base + rng.normal(0, 40, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels, "RGB").convert(mode)
        image.save(folder / f"{i:04d}.{fmt}")


def make_dataset(root: Path, *, classes=CLASSES, n_train=20, n_test=5, split=True, **kw) -> Path:
    """train/<class>/* and test/<class>/* (or only <class>/* when split=False) under root."""
    for c, name in enumerate(classes):
        if split:
            write_images(root / "train" / name, n_train, seed=c, **kw)
            write_images(root / "test" / name, n_test, seed=100 + c, **kw)
        else:
            write_images(root / name, n_train + n_test, seed=c, **kw)
    return root


@pytest.fixture(autouse=True)
def _seed_and_close():
    import matplotlib.pyplot as plt

    np.random.seed(0)
    yield
    plt.close("all")


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    """Ten classes, 10 training and 2 test PNGs each: 100 training images."""
    return make_dataset(tmp_path / "tiny", classes=tuple(f"class{i}" for i in range(10)), n_train=10, n_test=2)
