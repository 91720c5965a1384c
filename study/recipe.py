"""The training hyperparameters every model shares: batch size, augmentation, schedule, weight decay, label smoothing.

Their names are reserved (config.TRAINING_HYPERPARAMETERS): a search of the notebook's CNN varies them
with --batch-sizes, --augmentations, --schedules, --weight-decays and --label-smoothings; a --model
function declares them with hp.Choice like its own. A configuration that does not name one trains with
the notebook's value (config.Baseline), so the runs and trials of studies made before these existed
keep their keys and numbers.

Where each is applied: the batch size and augmentation by `study.training.fit`'s batches (augmentation:
`study.augment`), the schedule as a callback of that fit (`study.training.CosineSchedule`), weight decay
and label smoothing when the model is compiled (`study.model.compile_model`). This module imports no
Keras: the report plans its runs without it.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from study.config import BASELINE, TRAINING_HYPERPARAMETERS


class Recipe(NamedTuple):
    """How one configuration is trained, each value the configuration's or the notebook's."""

    batch_size: int
    augmentation: str
    schedule: str
    weight_decay: float
    label_smoothing: float


def recipe(values: dict[str, Any], batch_size: int = BASELINE.batch_size) -> Recipe:
    """The recipe of a configuration's hyperparameters; `batch_size` where they name none (the command's)."""
    defaults = {**BASELINE.training(), "batch_size": batch_size}
    return Recipe(**{name: values.get(name, defaults[name]) for name in TRAINING_HYPERPARAMETERS})


def canonical(values: dict[str, Any], batch_size: int = BASELINE.batch_size) -> dict[str, Any]:
    """`values` without the training hyperparameters that equal what a configuration naming none gets.

    A search's best trial with the notebook's recipe is then the very configuration of the baseline,
    saved and trained once, not twice under two names.
    """
    defaults = {**BASELINE.training(), "batch_size": batch_size}
    return {k: v for k, v in values.items() if k not in defaults or v != defaults[k]}
