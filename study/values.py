"""Hyperparameter values given by hand (`--baseline`, the ablation's `--source` and `--target`): read and checked.

"optimizer=sgd,learning_rate=0.05,batch_size=128" becomes {name: value}, each value checked as a search
checks its lists, before any image is decoded.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from study.config import BASELINE, OPTIMIZERS, TRAINING_HYPERPARAMETERS, StudyError, validate_training

NOTEBOOK_CNN_HYPERPARAMETERS = (*BASELINE.hyperparameters(), *TRAINING_HYPERPARAMETERS)
_KINDS = {"optimizer": str, "learning_rate": float, "dropout_1": float, "dropout_2": float, "dropout_3": float,
          "batch_size": int, "augmentation": str, "schedule": str, "weight_decay": float, "label_smoothing": float}


def parse_assignments(text: str, flag: str = "--baseline") -> dict[str, Any]:
    """"optimizer=sgd,learning_rate=0.05,batch_size=128" as {name: value}: study's own names take their type, a
    model's own are read as a number, true/false or text; StudyError for a malformed item or a name given twice."""
    values: dict[str, Any] = {}
    for item in (part.strip() for part in text.split(",")):
        name, sep, raw = item.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name or not raw:
            raise StudyError(f"{flag} takes NAME=VALUE,NAME=VALUE..., got {item!r}")
        if name in values:
            raise StudyError(f"{flag} names {name} twice")
        values[name] = _typed(name, raw, flag)
    return values


def _typed(name: str, raw: str, flag: str) -> Any:
    kind = _KINDS.get(name)
    try:
        if kind is not None:
            return kind(raw)
    except ValueError:
        raise StudyError(f"{flag}: {name} must be {'a whole number' if kind is int else 'a number'}, got {raw!r}") \
            from None
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw


def validate_values(values: dict[str, Any], allowed: Sequence[str] | None = None, flag: str = "--baseline") -> None:
    """StudyError (one line) for a name not in `allowed` (None: the notebook CNN's and training's) or a value no
    run can train with: an unknown optimizer, a learning rate <= 0, a dropout outside [0, 1), a training value."""
    allowed = NOTEBOOK_CNN_HYPERPARAMETERS if allowed is None else allowed
    unknown = [name for name in values if name not in allowed]
    if unknown:
        raise StudyError(f"{flag}: no hyperparameter named {unknown[0]} (choose from {', '.join(allowed)})")
    if "optimizer" in values and values["optimizer"] not in OPTIMIZERS:
        raise StudyError(f"{flag}: unknown optimizer {values['optimizer']!r}; choose from {', '.join(OPTIMIZERS)}")
    if "learning_rate" in values and not values["learning_rate"] > 0:
        raise StudyError(f"{flag}: learning_rate must be > 0, got {values['learning_rate']}")
    for name in ("dropout_1", "dropout_2", "dropout_3"):
        if name in values and name in NOTEBOOK_CNN_HYPERPARAMETERS and not 0 <= values[name] < 1:
            raise StudyError(f"{flag}: {name} must be in [0, 1), got {values[name]}")
    validate_training({k: [v] for k, v in values.items() if k in TRAINING_HYPERPARAMETERS}, f"{flag} {{}}")
