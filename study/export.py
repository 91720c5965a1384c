"""Model files: the report's answer as `.keras` files that take uint8 images, made from the runs' saved weights."""
from __future__ import annotations

import json
import shutil
import warnings as pywarnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from study.config import ReportConfig
from study.records import Run, RunStore

if TYPE_CHECKING:
    from study.model import ModelFunction


def models_to_export(runs: dict[str, list[Run]], analysis, store: RunStore, cfg: ReportConfig,
                     confirmation: tuple[list[Run], list[Run]] | None = None) -> list[dict[str, Any]]:
    """The model files the report can write: each seed of the recommendation and of the baseline (the race's and
    the confirmation's), and the final fit.

    Only runs whose weights are on disk (weights are never committed: a report re-rendered from a
    fresh checkout lists none).
    """
    found = []
    confirmed = dict(zip(["baseline", analysis.challenger], confirmation or ([], [])))
    for arm in dict.fromkeys([analysis.recommended, "baseline"]):
        for run in [*runs[arm], *confirmed.get(arm, [])]:
            weights = store.weights_path(run.hyperparameters, run.seed)
            if weights.exists():
                found.append({"file": f"{arm.replace(' ', '_')}-seed{run.seed}.keras", "arm": arm, "seed": run.seed,
                              "hyperparameters": run.hyperparameters, "test_accuracy": run.test_accuracy,
                              "weights": weights})
    recommended = runs[analysis.recommended][0].hyperparameters
    final = store.final_weights_path(recommended, cfg.seed)
    if cfg.final_fit and final.exists():
        found.append({"file": "final.keras", "arm": f"{analysis.recommended} (final fit)", "seed": cfg.seed,
                      "hyperparameters": recommended, "test_accuracy": None, "weights": final})
    return found


SOURCES = "sources.json"  # in the models folder: the weights file (path, size, time) each model file was made from


def export_models(folder: Path, models: list[dict[str, Any]], model: ModelFunction | None,
                  input_shape: tuple[int, ...], num_classes: int, previous: Path | None = None) -> list[dict[str, Any]]:
    """Write each model as a `.keras` file that takes uint8 images as the data loader gives them.

    The scaling to [0, 1] is the saved model's first layer, dividing by 255 exactly as training did.
    A file that `previous` (the last report's models folder) already made from the same weights is
    copied, not rebuilt: a report that only renders imports no TensorFlow.
    """
    if not models:
        return []
    folder.mkdir(parents=True)
    made = _read_sources(previous)
    sources = {}
    for entry in models:
        sources[entry["file"]] = _source(entry["weights"])
        if made.get(entry["file"]) == sources[entry["file"]]:
            shutil.copy2(previous / entry["file"], folder / entry["file"])
        else:
            _export_model(folder / entry["file"], entry, model, input_shape, num_classes)
    (folder / SOURCES).write_text(json.dumps(sources, indent=1))
    return [{k: v for k, v in e.items() if k != "weights"} for e in models]


def _source(weights: Path) -> dict[str, Any]:
    stat = weights.stat()
    return {"weights": str(weights.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _read_sources(previous: Path | None) -> dict[str, Any]:
    """What the last report's model files were made from; {} when unknown (no file, or unreadable: rebuilt)."""
    try:
        made = json.loads((previous / SOURCES).read_text())
    except (TypeError, OSError, ValueError):
        return {}
    return {name: src for name, src in made.items() if (previous / name).is_file()} if isinstance(made, dict) else {}


def _export_model(path: Path, entry: dict[str, Any], model: ModelFunction | None, input_shape: tuple[int, ...],
                  num_classes: int) -> None:
    import keras

    from study.model import NOTEBOOK_CNN, build_uncompiled

    # Not compiled: the file then loads without study (a label-smoothed loss is study's own class).
    trained = build_uncompiled(input_shape, num_classes, entry["hyperparameters"], model or NOTEBOOK_CNN)
    with pywarnings.catch_warnings():  # the weights' optimizer state: not part of the model file
        pywarnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        trained.load_weights(entry["weights"])
    inputs = keras.Input(shape=input_shape, dtype="uint8", name="images")
    # Normalization with mean 0 and variance 255**2 divides by 255.0, as study.training.Batches does;
    # Rescaling(1/255) would multiply, off by one float32 rounding for some pixels.
    scaled = keras.layers.Normalization(mean=0.0, variance=255.0**2, name="scale_to_0_1")(inputs)
    keras.Model(inputs, trained(scaled), name="study_model").save(path)
