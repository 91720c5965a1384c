"""Write images as a study data archive: train/<class>/NNNN.jpg and test/<class>/NNNN.jpg in a .tar.gz.

    python tools/make_archive.py OUT.tar.gz --cifar10            # keras.datasets.cifar10 (downloads it once)
    python tools/make_archive.py OUT.tar.gz --npz images.npz     # arrays x_train, y_train, x_test, y_test[, class_names]

This is how `../shared/data/cifar10-jpeg.tar.gz` is laid out (docs/data.md): each class a folder, the
images numbered from 0000 in their order in the arrays, JPEG at Pillow's defaults (quality 75, 4:2:0
chroma subsampling: what its quantization tables show). `study` reads the result with `--data-dir`.
"""
from __future__ import annotations

import argparse
import io
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def write_archive(path: str | Path, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                  class_names: Sequence[str], quality: int = 75) -> Path:
    """Write uint8 images (n, height, width[, channels]) and integer labels as JPEG class folders in a .tar.gz."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tarfile.open(tmp, "w:gz") as archive:
        for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
            counts = dict.fromkeys(range(len(class_names)), 0)
            for image, label in zip(np.asarray(x), np.asarray(y).reshape(-1)):
                name = f"{split}/{class_names[int(label)]}/{counts[int(label)]:04d}.jpg"
                counts[int(label)] += 1
                _add(archive, name, _jpeg(image, quality))
    tmp.replace(path)
    return path


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    image = np.asarray(image, np.uint8)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=quality)
    return out.getvalue()


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), int(time.time())
    archive.addfile(info, io.BytesIO(data))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("output", help="the archive to write, e.g. my-images.tar.gz")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--cifar10", action="store_true", help="CIFAR-10 through keras.datasets")
    source.add_argument("--npz", metavar="FILE", help="a NumPy .npz with x_train, y_train, x_test, y_test and, "
                        "optionally, class_names")
    p.add_argument("--quality", type=int, default=75, help="JPEG quality (default: 75, Pillow's and the archive's)")
    args = p.parse_args(argv)
    if args.cifar10:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
        names = CIFAR10_CLASSES
    else:
        arrays = np.load(args.npz, allow_pickle=False)
        x_train, y_train, x_test, y_test = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        top = int(max(y_train.max(), y_test.max())) + 1
        names = tuple(str(c) for c in arrays["class_names"]) if "class_names" in arrays else tuple(map(str, range(top)))
    out = write_archive(args.output, x_train, y_train, x_test, y_test, names, args.quality)
    print(f"{out}: {len(y_train)} training and {len(y_test)} test images in {len(names)} classes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
