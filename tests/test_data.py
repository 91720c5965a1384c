from __future__ import annotations

import re
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import CLASSES, SHARED_CIFAR, make_dataset, write_images

from study.config import DataConfig
from study import data as data_module
from study.data import DataError, load_dataset
from study.training import Batches


def _tar(src, dest, wrap=None):
    with tarfile.open(dest, "w:gz") as tf:
        tf.add(src, arcname=wrap or ".")
    return dest


def _zip(src, dest, with_dirs=False):
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file() or with_dirs:
                zf.write(p, p.relative_to(src).as_posix())
    return dest


def _with_file(tmp_path: Path, name: str, content: bytes) -> Path:
    """A class-folders dataset with one file replaced or added."""
    root = make_dataset(tmp_path / "d", split=False)
    (root / name).write_bytes(content)
    return root


def _truncate(path: Path) -> None:
    """Cut a PNG in half: its header stays whole, so only decoding it finds the damage."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_train_test_folders_load_as_uint8_with_class_names(tmp_path):
    root = make_dataset(tmp_path / "d", n_train=20, n_test=5)
    data = load_dataset(DataConfig(data_dir=str(root)))
    assert data.class_names == CLASSES
    assert data.x_train.dtype == np.uint8 and data.x_train.shape[1:] == (32, 32, 3)
    assert len(data.x_train) == 48 and len(data.x_val) == 12 and len(data.x_test) == 15
    # stratified 80/20: every class in both parts, in proportion
    assert np.bincount(data.y_val).tolist() == [4, 4, 4]
    assert np.bincount(data.y_test).tolist() == [5, 5, 5]


def test_folder_image_is_read_exactly(tmp_path):
    root = make_dataset(tmp_path / "d", n_train=10, n_test=2)
    from PIL import Image

    data = load_dataset(DataConfig(data_dir=str(root)))
    expected = np.asarray(Image.open(root / "test" / "cat" / "0000.png"))
    np.testing.assert_array_equal(data.x_test[0], expected)
    assert data.y_test[0] == 0


@pytest.mark.parametrize("archive", ["tar.gz", "tgz", "zip", "zip-dirs", "tar.gz-wrapped"])
def test_archives_equal_the_folder(tmp_path, archive):
    root = make_dataset(tmp_path / "d", n_train=10, n_test=3, fmt="jpg")
    if archive == "zip":
        path = _zip(root, tmp_path / "d.zip")
    elif archive == "zip-dirs":
        path = _zip(root, tmp_path / "d.zip", with_dirs=True)
    elif archive == "tar.gz-wrapped":
        path = _tar(root, tmp_path / "d.tar.gz", wrap="cifar-like")
    else:
        path = _tar(root, tmp_path / f"d.{archive}")
    from_folder = load_dataset(DataConfig(data_dir=str(root)))
    from_archive = load_dataset(DataConfig(data_dir=str(path)))
    assert from_archive.class_names == from_folder.class_names
    np.testing.assert_array_equal(from_archive.x_train, from_folder.x_train)
    np.testing.assert_array_equal(from_archive.y_test, from_folder.y_test)


def test_gray_odd_sized_images_are_converted(tmp_path):
    root = tmp_path / "d"
    write_images(root / "a", 10, seed=1, size=(17, 45), mode="L", fmt="png")
    write_images(root / "b", 10, seed=2, size=(64, 48), mode="RGB", fmt="jpeg")
    data = load_dataset(DataConfig(data_dir=str(root)))
    assert data.x_train.shape[1:] == (32, 32, 3)
    gray = load_dataset(DataConfig(data_dir=str(root), channels=1, image_size=(24, 20)))
    assert gray.x_train.shape[1:] == (24, 20, 1)


@pytest.mark.parametrize("split", [True, False])
def test_test_images_can_be_checked_without_being_kept(tmp_path, split):
    root = make_dataset(tmp_path / "d", split=split, n_train=20, n_test=5)
    full = load_dataset(DataConfig(data_dir=str(root)))
    lean = load_dataset(DataConfig(data_dir=str(root)), keep_test=False)
    assert lean.x_test is None and "15 test images" in lean.describe()
    np.testing.assert_array_equal(lean.y_test, full.y_test)
    np.testing.assert_array_equal(lean.x_train, full.x_train)
    # A broken test image is still an error, though its pixels would not be kept.
    from PIL import Image

    broken = next(p for p in sorted(root.rglob("*.png")) if np.array_equal(np.asarray(Image.open(p)), full.x_test[0]))
    broken.write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="not a readable PNG or JPEG"):
        load_dataset(DataConfig(data_dir=str(root)), keep_test=False)


def test_class_folders_only_get_a_stratified_seeded_test_split(tmp_path):
    root = make_dataset(tmp_path / "d", split=False, n_train=20, n_test=5)
    (root / ".DS_Store").write_text("ignored")
    (root / "README.txt").write_text("ignored: not in a class folder")
    a = load_dataset(DataConfig(data_dir=str(root)))
    b = load_dataset(DataConfig(data_dir=str(root)))
    assert len(a.x_test) == 15 and np.bincount(a.y_test).tolist() == [5, 5, 5]
    np.testing.assert_array_equal(a.x_test, b.x_test)


def test_subset_is_stratified_and_test_shrinks_in_proportion(tmp_path):
    root = make_dataset(tmp_path / "d", n_train=40, n_test=10)
    data = load_dataset(DataConfig(data_dir=str(root), subset=60))
    assert len(data.x_train) + len(data.x_val) == 60
    assert np.bincount(np.concatenate([data.y_train, data.y_val])).tolist() == [20, 20, 20]
    assert len(data.x_test) == 15


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing", "no such file or directory"),
        (lambda p: (p / "x.tar.gz").write_bytes(b"not an archive") and p / "x.tar.gz", "cannot read the archive"),
        (lambda p: (p / "x.zip").write_bytes(b"PK not a zip") and p / "x.zip", "cannot read the archive"),
        (lambda p: (p / "x.rar").write_bytes(b"??") and p / "x.rar", "not a directory or a"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no class folders"),
        (lambda p: (write_images(p / "d" / "only", 5, seed=0), p / "d")[1], "only one class folder"),
        (lambda p: (make_dataset(p / "d", split=False), (p / "d" / "zebra").mkdir(), p / "d")[2], "empty class folder"),
        (lambda p: _with_file(p, "cat/0001.png", b"\x89PNG broken"), "not a readable PNG or JPEG"),
        (lambda p: _with_file(p, "cat/notes.txt", b"hi"), "not a PNG or JPEG image"),
        (lambda p: (make_dataset(p / "d"), shutil.rmtree(p / "d" / "test" / "frog"), p / "d")[2],
         "different class folders"),
        (lambda p: (make_dataset(p / "d"), shutil.rmtree(p / "d" / "test"), p / "d")[2], "no test/ folder"),
    ],
    ids=["missing", "bad-tar", "bad-zip", "unknown-suffix", "no-classes", "one-class", "empty-class",
         "corrupt-image", "non-image", "class-mismatch", "train-without-test"],
)
def test_bad_data_is_one_clear_error(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(DataError, match=message) as info:
        load_dataset(DataConfig(data_dir=str(path)))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("source", ["folder", "tar.gz", "zip"])
@pytest.mark.parametrize("member", ["train/dog/0003.png", "test/frog/0001.png"])
def test_corrupt_image_is_named_by_its_path(tmp_path, source, member):
    root = make_dataset(tmp_path / "d", n_train=10, n_test=3)
    _truncate(root / member)
    path = {"folder": lambda: root, "tar.gz": lambda: _tar(root, tmp_path / "d.tar.gz"),
            "zip": lambda: _zip(root, tmp_path / "d.zip")}[source]()
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(data_dir=str(path)), keep_test=False)
    # The file as the user finds it: its path, or the archive's path and the member's name.
    assert str(info.value).startswith(f"{path}/{member}: not a readable PNG or JPEG image (")
    assert "\n" not in str(info.value)


def _pixels(*arrays) -> set[bytes]:
    return {image.tobytes() for x in arrays for image in x}


@pytest.mark.parametrize("split", [True, False], ids=["train-test-folders", "class-folders"])
@pytest.mark.parametrize("part", ["train", "test"])
def test_corrupt_image_outside_the_subset_is_an_error(tmp_path, split, part):
    """--subset leaves images out; a broken one among them is still an error, never skipped."""
    from PIL import Image

    root = make_dataset(tmp_path / "d", split=split, n_train=20, n_test=5)
    cfg = DataConfig(data_dir=str(root), subset=15)
    whole, sub = load_dataset(DataConfig(data_dir=str(root))), load_dataset(cfg)
    in_part = _pixels(whole.x_test) if part == "test" else _pixels(whole.x_train, whole.x_val)
    used = _pixels(sub.x_train, sub.x_val, sub.x_test)
    left_out = []
    for path in sorted(root.rglob("*.png")):
        pixels = np.asarray(Image.open(path)).tobytes()
        if pixels in in_part and pixels not in used:
            left_out.append(path)
    assert left_out, "the subset uses every image of this part"
    _truncate(left_out[0])
    for keep_test in (True, False):
        with pytest.raises(DataError, match=re.escape(f"{left_out[0]}: not a readable PNG or JPEG image")):
            load_dataset(cfg, keep_test=keep_test)


def test_subset_out_of_range(tmp_path):
    root = make_dataset(tmp_path / "d", n_train=10, n_test=2)
    with pytest.raises(DataError, match="larger than the 30 training images"):
        load_dataset(DataConfig(data_dir=str(root), subset=31))
    with pytest.raises(DataError, match="smaller than the number of classes"):
        load_dataset(DataConfig(data_dir=str(root), subset=2))


def test_offline_cifar10_says_to_use_data_dir(monkeypatch):
    import keras

    def offline():
        raise Exception("URL fetch failure on https://example.invalid: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset(DataConfig())


def test_cifar10_arrays_path_splits_and_resizes(monkeypatch):
    import keras

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(200, 32, 32, 3), dtype=np.uint8)
    y = np.repeat(np.arange(10), 20).reshape(-1, 1)
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", lambda: ((x, y), (x[:50], y[:50])))
    data = load_dataset(DataConfig())
    assert data.class_names[3] == "cat" and len(data.x_train) == 160 and len(data.x_val) == 40
    small = load_dataset(DataConfig(image_size=(16, 16), channels=1))
    assert small.x_test.shape == (50, 16, 16, 1)


def test_batches_scale_to_unit_float32_and_shuffle_reproducibly():
    x = np.arange(10 * 2 * 2 * 1, dtype=np.uint8).reshape(10, 2, 2, 1) * 6
    y = np.arange(10)
    plain = Batches(x, y, 4)
    assert len(plain) == 3
    xb, yb = plain[0]
    assert xb.dtype == np.float32 and xb.max() <= 1.0
    np.testing.assert_allclose(xb, x[:4] / 255.0, rtol=1e-6)
    a, b = Batches(x, y, 4, shuffle=True, seed=3), Batches(x, y, 4, shuffle=True, seed=3)
    order_a = np.concatenate([a[i][1] for i in range(len(a))])
    assert sorted(order_a) == list(range(10)) and order_a.tolist() != list(range(10))
    assert order_a.tolist() == np.concatenate([b[i][1] for i in range(len(b))]).tolist()
    a.on_epoch_end()
    assert np.concatenate([a[i][1] for i in range(len(a))]).tolist() != order_a.tolist()


@pytest.mark.slow  # every one of the 60,000 images is decoded, the 100 kept and the others checked: 20-35 s
@pytest.mark.skipif(not SHARED_CIFAR.exists(), reason=f"{SHARED_CIFAR} is not here (read-only shared data)")
def test_shared_cifar10_jpeg_subset():
    data = load_dataset(DataConfig(data_dir=str(SHARED_CIFAR), subset=100))
    assert data.class_names[:3] == ("airplane", "automobile", "bird")
    assert len(data.x_train) == 80 and len(data.x_val) == 20 and len(data.x_test) == 20
    assert np.bincount(data.y_train, minlength=10).tolist() == [8] * 10


def test_a_report_that_only_renders_keeps_labels_and_samples_without_decoding_the_training_images(tiny_data,
                                                                                                  monkeypatch):
    full = load_dataset(DataConfig(data_dir=str(tiny_data)), keep_test="encoded")
    decoded = []
    original = data_module._convert
    monkeypatch.setattr(data_module, "_convert", lambda im, cfg: decoded.append(1) or original(im, cfg))
    light = load_dataset(DataConfig(data_dir=str(tiny_data)), keep_test="encoded", keep_train=False)
    assert light.x_train is None and light.x_val is None and len(decoded) == len(light.sample_images()[1])
    for a, b in zip(full.sample_images(), light.sample_images()):
        np.testing.assert_array_equal(a, b)
    for name in ("y_train", "y_val", "y_test"):
        np.testing.assert_array_equal(getattr(full, name), getattr(light, name))
    np.testing.assert_array_equal(np.asarray(full.x_test), np.asarray(light.x_test))
    assert light.describe() == full.describe()
