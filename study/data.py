"""Data: CIFAR-10 from the Keras cache, or an image-folder dataset (a directory or an archive of one).

Images stay uint8 in memory (0.18 GB for all of CIFAR-10); `study.training.Batches` scales each batch
to float32 in [0, 1] as the model consumes it, so no float copy of the whole set is ever made.

Folder layouts: `train/<class>/*` plus `test/<class>/*`, or only `<class>/*` (then a stratified,
seeded test split is made); one wrapping folder around either is fine. Class names are the folder
names, sorted. Files and folders whose names start with "." (or `__MACOSX`) are ignored. Every
other file in a class folder must be a readable PNG or JPEG: a corrupt or non-image file is
rejected with an error naming it, never skipped silently, so a dataset is always used whole.
That holds with `--subset` too: the images a subset leaves out are decoded (then dropped) as well.
"""
from __future__ import annotations

import dataclasses
import io
import os
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from sklearn.model_selection import train_test_split

from study import arrays, runtime
from study.config import DataConfig, StudyError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class DataError(StudyError):
    """The data cannot be used; the message says why in one line."""


@dataclass
class Dataset:
    """uint8 images (n, height, width, channels) and int32 labels for each split, with class names.

    `x_test` is None when the caller asked not to keep the test images (a search never looks at them);
    `x_train` and `x_val` are None once a report has trained (`without_training_images`).
    """

    x_train: np.ndarray | None
    y_train: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str
    image_shape: tuple[int, int, int]  # (height, width, channels)
    samples: tuple[np.ndarray, np.ndarray] | None = None  # kept by without_training_images

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.image_shape)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> str:
        return (
            f"{self.source}: {len(self.y_train)} train / {len(self.y_val)} validation / "
            f"{len(self.y_test)} test images of {'x'.join(map(str, self.input_shape))}, "
            f"{self.num_classes} classes"
        )

    def sample_images(self, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """The first training image of each of the first `n` classes, with its label: what a report shows."""
        if self.x_train is None:
            return self.samples
        picks = first_of_each_class(self.y_train, n)
        return self.x_train[picks], self.y_train[picks]

    def without_training_images(self) -> Dataset:
        """A copy without the training and validation images, keeping their labels and sample images.

        Once a report has trained, it shows only their counts and a few samples: the 0.15 GB of
        CIFAR-10's training images need not stay in memory while it renders.
        """
        return dataclasses.replace(self, x_train=None, x_val=None, samples=self.sample_images())


class EncodedImages:
    """Images kept as their files' bytes and decoded when indexed: `x[indices]`, `x[i]`, `len(x)`, `x.shape`.

    What the model's batches and the plots need of an image array, for a tenth of its memory: a
    report holds CIFAR-10's 10,000 test images this way while it trains (0.03 GB less at its peak),
    and decodes them again for each evaluation (about 2 s of CPU).
    """

    dtype = np.dtype(np.uint8)

    def __init__(self, take: Callable[[np.ndarray], np.ndarray], idx: np.ndarray, image_shape: tuple[int, ...]):
        self._take, self._idx = take, np.asarray(idx)
        self.shape = (len(self._idx), *image_shape)

    def __len__(self) -> int:
        return len(self._idx)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self._take(self._idx[[key]])[0]
        return self._take(self._idx[key])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self._take(self._idx)
        return whole if dtype is None else whole.astype(dtype)


# --- sources --------------------------------------------------------------------------------------

@dataclass
class _Pool:
    """Labels of one split's images, and a way to materialise any subset of them as uint8 arrays."""

    labels: np.ndarray
    take: Callable[[np.ndarray], np.ndarray]
    check: Callable[[np.ndarray], None] = lambda idx: None  # decode without keeping: errors only


def load_dataset(cfg: DataConfig, *, keep_test: bool | str = True, keep_train: bool = True) -> Dataset:
    """Load, subset and split the data described by `cfg`; raises DataError with a one-line reason.

    Every image is decoded, whatever `--subset` keeps: a corrupt file is an error even where the
    subset would not have used it (README, "Data"). With `keep_test=False` the test images are
    decoded too (a broken one is an error now, not in the report) but not kept: 31 MB less for a
    search on all of CIFAR-10. With `keep_test="encoded"` they are checked the same way and kept
    as `EncodedImages`, decoded again batch by batch where they are used (a report's evaluations).
    With `keep_train=False` the training and validation images are neither decoded nor checked,
    only their labels and a few samples are kept: what a report that only renders needs.
    """
    if cfg.data_dir is None:
        train, test, classes = _cifar10_pools(cfg)
        source = "CIFAR-10 (keras.datasets)"
    elif arrays.named(cfg.data_dir):
        held = arrays.held(cfg.data_dir)
        train, test = _array_pool(held.x_train, held.y_train, cfg), _array_pool(held.x_test, held.y_test, cfg)
        classes, source = held.class_names, f"arrays in memory ({cfg.data_dir[7:22]}...)"
    else:
        train, test, classes = _folder_pools(Path(cfg.data_dir), cfg)
        source = str(cfg.data_dir)

    train_idx, test_idx = _subset(cfg, train.labels, test.labels, len(classes))
    try:
        fit_idx, val_idx = train_test_split(
            train_idx, test_size=cfg.val_fraction, random_state=cfg.split_seed, stratify=train.labels[train_idx]
        )
    except ValueError as e:
        raise DataError(
            f"{len(train_idx)} training images cannot be split {1 - cfg.val_fraction:.0%}/{cfg.val_fraction:.0%} "
            f"with every one of {len(classes)} classes in both parts ({_first_line(e)}); use more images"
        ) from None
    # Sorted: reading order follows the source, which is faster for archives and files.
    fit_idx, val_idx, test_idx = np.sort(fit_idx), np.sort(val_idx), np.sort(test_idx)
    # The images left out are decoded too, one at a time and dropped: no extra memory. A full decode
    # (about 10 s of CPU for all 60,000 CIFAR-10 JPEGs) rather than a header check (2.5 s): a
    # truncated file has a whole header. Without --subset nothing is left out, so nothing extra.
    image_shape = (*cfg.image_size, cfg.channels)
    x_test = {True: test.take, "encoded": lambda idx: EncodedImages(test.take, idx, image_shape)}.get(keep_test)
    if keep_train:
        train.check(_outside(train_idx, len(train.labels)))
        test.check(_outside(test_idx, len(test.labels)) if keep_test is True else np.arange(len(test.labels)))
    data = Dataset(
        x_train=train.take(fit_idx) if keep_train else None, y_train=train.labels[fit_idx],
        x_val=train.take(val_idx) if keep_train else None, y_val=train.labels[val_idx],
        x_test=x_test(test_idx) if x_test else None, y_test=test.labels[test_idx],
        class_names=tuple(classes), source=source, image_shape=image_shape,
        samples=None if keep_train else _samples(train, fit_idx),
    )
    del train, test, x_test  # their closures hold every encoded image (EncodedImages keeps its own)
    runtime.release_freed_memory()
    return data


def first_of_each_class(labels: np.ndarray, n: int = 5) -> list[int]:
    """The index of the first image of each of the first `n` classes present: the sample images a report shows."""
    return [int(np.flatnonzero(labels == label)[0]) for label in np.unique(labels)[:n]]


def _samples(train: _Pool, fit_idx: np.ndarray, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """What `Dataset.sample_images` shows, decoding only those images."""
    labels = train.labels[fit_idx]
    picks = first_of_each_class(labels, n)
    return train.take(fit_idx[picks]), labels[picks]


def _subset(cfg: DataConfig, train: np.ndarray, test: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and test images `--subset` keeps (all of them without it)."""
    if cfg.subset is None:
        return np.arange(len(train)), np.arange(len(test))
    if cfg.subset > len(train):
        raise DataError(f"--subset {cfg.subset} is larger than the {len(train)} training images")
    if cfg.subset < k:
        raise DataError(f"--subset {cfg.subset} is smaller than the number of classes ({k})")
    n_test = min(len(test), max(k, round(cfg.subset * len(test) / len(train))))
    return (
        _stratified_take(train, cfg.subset, cfg.split_seed, "--subset"),
        _stratified_take(test, n_test, cfg.split_seed, "the test subset"),
    )


def _outside(idx: np.ndarray, n: int) -> np.ndarray:
    """The indices in range(n) that are not in `idx`, sorted."""
    return np.setdiff1d(np.arange(n), idx, assume_unique=True)


def _stratified_take(labels: np.ndarray, n: int, seed: int, what: str) -> np.ndarray:
    if n >= len(labels):
        return np.arange(len(labels))
    try:
        idx, _ = train_test_split(np.arange(len(labels)), train_size=n, random_state=seed, stratify=labels)
    except ValueError as e:
        raise DataError(f"cannot draw a stratified {what} of {n} images ({_first_line(e)})") from None
    return idx


def _cifar10_pools(cfg: DataConfig) -> tuple[_Pool, _Pool, tuple[str, ...]]:
    import keras  # TensorFlow loads slowly: only for this source

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as e:  # keras raises a bare Exception for a failed download
        cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
        reason = _first_line(e)
        raise DataError(
            f"CIFAR-10 is not in the Keras cache ({cache}) and could not be downloaded ({reason}); "
            "pass --data-dir PATH to use an image folder or archive instead"
        ) from None

    return _array_pool(x_train, y_train, cfg), _array_pool(x_test, y_test, cfg), CIFAR10_CLASSES


def _array_pool(x: np.ndarray, y: np.ndarray, cfg: DataConfig) -> _Pool:
    """Images in a uint8 array (n, height, width, channels), resized or converted where `cfg` asks."""
    def take(idx: np.ndarray) -> np.ndarray:
        if x.shape[1:] == (*cfg.image_size, cfg.channels):
            return x[idx]
        out = np.empty((len(idx), *cfg.image_size, cfg.channels), np.uint8)
        for j, i in enumerate(idx):
            out[j] = _convert(Image.fromarray(x[i][..., 0] if x.shape[-1] == 1 else x[i]), cfg)
        return out

    return _Pool(y.reshape(-1).astype(np.int32), take)


def _folder_pools(path: Path, cfg: DataConfig) -> tuple[_Pool, _Pool, tuple[str, ...]]:
    files, dirs = _read_tree(path)
    root = _find_root(files, dirs)
    top = _children(files, dirs, root)
    if "train" in top or "test" in top:
        missing = {"train", "test"} - top
        if missing:
            raise DataError(f"{path}: found {(top & {'train', 'test'}).pop()}/ but no {missing.pop()}/ folder")
        train_classes = _classes(files, dirs, (*root, "train"), path)
        test_classes = _classes(files, dirs, (*root, "test"), path)
        if list(train_classes) != list(test_classes):
            only_train = sorted(set(train_classes) - set(test_classes))
            only_test = sorted(set(test_classes) - set(train_classes))
            raise DataError(
                f"{path}: train/ and test/ have different class folders "
                f"(only in train: {only_train or 'none'}; only in test: {only_test or 'none'})"
            )
        classes = tuple(train_classes)
        train = _file_pool(train_classes, classes, cfg, path)
        test = _file_pool(test_classes, classes, cfg, path)
        return train, test, classes

    by_class = _classes(files, dirs, root, path)
    classes = tuple(by_class)
    whole = _file_pool(by_class, classes, cfg, path)
    try:
        train_idx, test_idx = train_test_split(
            np.arange(len(whole.labels)), test_size=cfg.test_fraction, random_state=cfg.split_seed,
            stratify=whole.labels,
        )
    except ValueError as e:
        raise DataError(
            f"{path}: too few images for a stratified {cfg.test_fraction:.0%} test split ({_first_line(e)})"
        ) from None
    return _part(whole, np.sort(train_idx)), _part(whole, np.sort(test_idx)), classes


def _part(whole: _Pool, part: np.ndarray) -> _Pool:
    """The images `part` of `whole`, as a pool of their own."""
    return _Pool(whole.labels[part], lambda idx: whole.take(part[idx]), lambda idx: whole.check(part[idx]))


Parts = tuple[str, ...]
Source = bytes | Path


def _hidden(parts: Parts) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _read_tree(path: Path) -> tuple[dict[Parts, Source], set[Parts]]:
    """Every file (as bytes, or a Path for directories) and every folder, keyed by path parts."""
    if not path.exists():
        raise DataError(f"--data-dir {path}: no such file or directory")
    files: dict[Parts, Source] = {}
    dirs: set[Parts] = set()
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            parts = p.relative_to(path).parts
            if _hidden(parts):
                continue
            if p.is_dir():
                dirs.add(parts)
            elif p.is_file():
                files[parts] = p
        return files, dirs

    name = path.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    parts = PurePosixPath(info.filename).parts
                    if not parts or _hidden(parts):
                        continue
                    if info.is_dir():
                        dirs.add(parts)
                    else:
                        files[parts] = zf.read(info)
        elif name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(path, "r:" if name.endswith(".tar") else "r:gz") as tf:
                for member in tf:
                    parts = PurePosixPath(member.name).parts
                    parts = parts[1:] if parts and parts[0] == "." else parts
                    if not parts or _hidden(parts):
                        continue
                    if member.isdir():
                        dirs.add(parts)
                    elif member.isfile():
                        files[parts] = tf.extractfile(member).read()
        else:
            raise DataError(f"--data-dir {path}: not a directory or a .tar.gz/.tgz/.tar/.zip archive")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise DataError(f"--data-dir {path}: cannot read the archive ({_first_line(e)})") from None
    # Archives may list files without their folders.
    for parts in files:
        for i in range(1, len(parts)):
            dirs.add(parts[:i])
    return files, dirs


def _children(files: dict[Parts, Source], dirs: set[Parts], prefix: Parts) -> set[str]:
    n = len(prefix)
    return {d[n] for d in dirs if len(d) > n and d[:n] == prefix}


def _find_root(files: dict[Parts, Source], dirs: set[Parts]) -> Parts:
    """Descend through single wrapping folders (`cifar10/train/...`) to the dataset's root."""
    root: Parts = ()
    while True:
        sub = _children(files, dirs, root)
        loose = [p for p in files if len(p) == len(root) + 1 and p[: len(root)] == root]
        if len(sub) != 1 or loose or sub & {"train", "test"}:
            return root
        child = (*root, sub.pop())
        if not _children(files, dirs, child):  # a single class folder: stop, and let _classes say so
            return root
        root = child


def _classes(files: dict[Parts, Source], dirs: set[Parts], prefix: Parts, path: Path) -> dict[str, list]:
    """{class name: [(file name, source), ...]} for the class folders under `prefix`, sorted."""
    where = f"{path}/{'/'.join(prefix)}".rstrip("/")
    names = sorted(_children(files, dirs, prefix))
    if not names:
        raise DataError(f"{where}: no class folders (expected <class>/<image> or train/<class>/<image>)")
    if len(names) < 2:
        raise DataError(f"{where}: only one class folder ({names[0]}); a classifier needs at least two")
    n = len(prefix)
    by_class: dict[str, list] = {c: [] for c in names}
    for parts, src in files.items():
        if len(parts) <= n or parts[:n] != prefix:
            continue
        if len(parts) == n + 1:
            if parts[-1].lower().endswith(IMAGE_SUFFIXES):
                raise DataError(f"{path}/{'/'.join(parts)}: image outside a class folder")
            continue  # a README or LICENSE beside the class folders
        by_class[parts[n]].append(("/".join(parts), src))
    for c, items in by_class.items():
        if not items:
            raise DataError(f"{where}/{c}: empty class folder")
        for name, _ in items:
            if not name.lower().endswith(IMAGE_SUFFIXES):
                raise DataError(f"{path}/{name}: not a PNG or JPEG image")
        items.sort()
    return by_class


def _file_pool(by_class: dict[str, list], classes: tuple[str, ...], cfg: DataConfig, path: Path) -> _Pool:
    items = [(item, i) for i, c in enumerate(classes) for item in by_class[c]]
    labels = np.array([label for _, label in items], dtype=np.int32)

    def decode(item: tuple[str, Source]) -> np.ndarray:
        name, src = item
        try:
            with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
                return _convert(im, cfg)
        except (OSError, SyntaxError, ValueError) as e:
            # The path as the user can find it: the file itself, or ARCHIVE/member inside an archive.
            raise DataError(f"{path}/{name}: not a readable PNG or JPEG image ({_first_line(e)})") from None

    def take(idx: np.ndarray) -> np.ndarray:
        # Decoded straight into one preallocated array: a list of images would double the peak memory.
        # (Threads do not help: for 32x32 JPEGs the GIL-bound overhead outweighs the decoding.)
        out = np.empty((len(idx), *cfg.image_size, cfg.channels), np.uint8)
        for j, i in enumerate(idx):
            out[j] = decode(items[i][0])
        return out

    def check(idx: np.ndarray) -> None:
        for i in idx:
            decode(items[i][0])

    return _Pool(labels, take, check)


def _convert(im: Image.Image, cfg: DataConfig) -> np.ndarray:
    im = im.convert("RGB" if cfg.channels == 3 else "L")
    height, width = cfg.image_size
    if im.size != (width, height):
        im = im.resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8).reshape(height, width, cfg.channels)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
