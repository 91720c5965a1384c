"""The command line both commands share: the parsers' common flags, and the shell that turns an error into one line.

`main(argv)` of each command parses its flags and calls the library; `command` runs that body and
turns what it raises into an exit status: a `StudyError` is one line and status 2, a failed search
its own status, Ctrl-C 130 with how to resume.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from study import runtime
from study.config import AUGMENTATIONS, BASELINE, SCHEDULES, DataConfig, StudyError


class CommandFailed(Exception):
    """The command cannot go on (a search stopped after failed trials, a child process failed): exit `status`,
    after `message` (one line) where there is one."""

    def __init__(self, status: int, message: str | None = None):
        super().__init__(message or status)
        self.status, self.message = status, message


def command(prog: str, body: Callable[[], object], interrupted: str | None) -> int:
    """Run a command's body: 0 when it returns, 2 with one line for bad input, 130 on Ctrl-C.

    `interrupted`: what to say on Ctrl-C (None: nothing, a child of a command that says it).
    """
    runtime.configure()
    runtime.quiet_tensorflow()  # imports nothing: --help and bad input stay fast
    try:
        body()
    except StudyError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except CommandFailed as e:
        if e.message:
            print(f"{prog}: {e.message}", file=sys.stderr)
        return e.status
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except KeyboardInterrupt:
        if interrupted:
            print(f"\ninterrupted; {interrupted}", file=sys.stderr)
        return 130
    return 0


class Parser(argparse.ArgumentParser):
    """An argument error becomes a StudyError: one line from main's handler, not the whole usage."""

    def error(self, message: str):
        raise StudyError(f"{message} (see --help)")


def list_of(kind, name: str):
    def parse(text: str):
        try:
            values = tuple(kind(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a comma-separated list of numbers, got {text!r}")
        if not values:
            raise argparse.ArgumentTypeError(f"{name} must not be empty")
        if len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"{name} lists a value twice: {text!r}")
        return values

    return parse


def image_size(text: str) -> tuple[int, int]:
    try:
        h, _, w = text.lower().partition("x")
        size = (int(h), int(w or h))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--image-size must be HEIGHTxWIDTH or SIZE, got {text!r}")
    return size


def add_data_arguments(parser: argparse.ArgumentParser, searched: str | None = None) -> None:
    """The data flags of both commands, so that both read the same data the same way.

    `searched`: where the defaults come from instead of the flags' own (the report's: its searches' data).
    """
    g = parser.add_argument_group("data", f"default: {searched}; a flag given changes that field only"
                                  if searched else None)

    def default(own: str) -> str:
        return "" if searched else f" (default: {own})"

    g.add_argument("--data-dir", metavar="PATH", help="image folders (train/<class>/*, test/<class>/* or <class>/*), "
                   "as a directory or a .tar.gz/.tgz/.tar/.zip archive" + default("CIFAR-10 via keras.datasets"))
    g.add_argument("--subset", type=int, metavar="N", help="a stratified N of the training images, split 80/20 "
                   "into training and validation, and a test subset in proportion (CIFAR-10, --subset 200: "
                   "160 training / 40 validation / 40 test)" + default("every image"))
    g.add_argument("--image-size", type=image_size, default=(32, 32), metavar="HxW",
                   help="images are resized to this" + default("32x32"))
    g.add_argument("--channels", type=int, choices=(1, 3), default=3,
                   help="1 (grayscale) or 3 (RGB)" + default("3"))
    g.add_argument("--split-seed", type=int, default=BASELINE.split_seed,
                   help="random_state of the stratified 80/20 train/validation split"
                   + default(str(BASELINE.split_seed)))


def data_config(args: argparse.Namespace) -> DataConfig:
    return DataConfig(
        data_dir=args.data_dir, subset=args.subset, image_size=tuple(args.image_size),
        channels=args.channels, split_seed=args.split_seed,
    )


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The training hyperparameters' flags (study.recipe); without them a search does not vary them at all."""
    t = parser.add_argument_group(
        "training hyperparameters", "comma-separated lists, searched beside the others; not given: the notebook's "
        "value, and no hyperparameter (a --model declares these names with hp.Choice instead)"
    )
    t.add_argument("--batch-sizes", type=list_of(int, "--batch-sizes"), metavar="LIST",
                   help=f"batch sizes, e.g. 32,64,128 (without it: --batch-size, default {BASELINE.batch_size})")
    t.add_argument("--augmentations", type=list_of(str, "--augmentations"), metavar="LIST",
                   help=f"of the training images, from {', '.join(AUGMENTATIONS)} (flip: a random horizontal flip; "
                   f"flip_translate: also a random shift of up to 4 pixels; default: {BASELINE.augmentation})")
    t.add_argument("--schedules", type=list_of(str, "--schedules"), metavar="LIST",
                   help=f"learning rate over the epochs, from {', '.join(SCHEDULES)} (cosine: from the learning rate "
                   f"to 0 over --epochs; default: {BASELINE.schedule})")
    t.add_argument("--weight-decays", type=list_of(float, "--weight-decays"), metavar="LIST",
                   help="decoupled weight decay (Keras optimizers' weight_decay: each step takes learning rate x "
                   f"weight decay of every weight, as AdamW), e.g. 0,0.01,0.1 (default: {BASELINE.weight_decay:g})")
    t.add_argument("--label-smoothings", type=list_of(float, "--label-smoothings"), metavar="LIST",
                   help=f"label smoothing of the loss, in [0, 1), e.g. 0,0.1 (default: {BASELINE.label_smoothing:g})")
