"""tools/make_archive.py writes the layout study reads: JPEG class folders, every image in its class and order."""
from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

from study.config import DataConfig
from study.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import make_archive  # noqa: E402


def _arrays(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = np.clip(rng.normal(60 + 60 * y[:, None, None, None], 3, (n, 12, 12, 3)), 0, 255).astype(np.uint8)
    return x, y


def test_an_archive_of_arrays_reads_back_as_the_same_images_in_their_classes(tmp_path):
    (x, y), (xt, yt) = _arrays(30, 0), _arrays(9, 1)
    path = make_archive.write_archive(tmp_path / "mine.tar.gz", x, y, xt, yt, ["ant", "bee", "cat"])
    with tarfile.open(path) as archive:
        names = sorted(m.name for m in archive if m.isfile())
    assert names[:3] == ["test/ant/0000.jpg", "test/ant/0001.jpg", "test/ant/0002.jpg"] and len(names) == 39
    assert "train/cat/0009.jpg" in names and "train/cat/0010.jpg" not in names
    data = load_dataset(DataConfig(data_dir=str(path), image_size=(12, 12)))
    assert data.class_names == ("ant", "bee", "cat") and len(data.y_test) == 9
    # The test images in archive order are the arrays' own, per class, up to JPEG's loss.
    order = np.argsort(yt, kind="stable")
    assert data.y_test.tolist() == yt[order].tolist()
    assert np.abs(data.x_test.astype(int) - xt[order].astype(int)).mean() < 6


def test_the_command_takes_an_npz_of_grayscale_images(tmp_path):
    x, y = _arrays(12, 2)
    np.savez(tmp_path / "images.npz", x_train=x[..., 0], y_train=y, x_test=x[:6, ..., 0], y_test=y[:6],
             class_names=np.array(["a", "b", "c"]))
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "make_archive.py"), str(tmp_path / "g.tar.gz"),
                           "--npz", str(tmp_path / "images.npz")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "12 training and 6 test images in 3 classes" in done.stdout
    data = load_dataset(DataConfig(data_dir=str(tmp_path / "g.tar.gz"), image_size=(12, 12), channels=1))
    assert data.x_test.shape == (6, 12, 12, 1)
