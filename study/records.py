"""The report's records: the searches it reads and the retrainings it runs, saved one file per run so a report resumes.

Both sides of the report use them: `study.report` trains and saves runs, `study.render` shows them.
A run is identified by its hyperparameters, its seed and its settings (data, epochs, batch size,
backend): rerunning the report retrains only the runs that are not saved yet, and a saved run
whose settings differ is never reused.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from study import results, storage
from study.config import SearchConfig, StudyError, config_key

RUNS_FOLDER = "runs"  # inside the report folder: <output>/runs/seed<k>-<key>.json (and .weights.h5)
MODELS_FOLDER = "models"  # inside the report folder: the model files exported from the saved weights


@dataclass
class Search:
    """One project under --directory: its configuration, trials and best completed trial."""

    name: str
    config: SearchConfig
    trials: pd.DataFrame  # study.results.trials_frame
    best: pd.Series | None
    folder: Path
    command: str | None = None  # the command line recorded in its config.json

    def histories(self) -> dict[str, dict[str, Any]]:
        """{trial id: its history.json}, for provenance and learning curves."""
        out = {}
        for path in sorted(self.folder.glob(f"trial_*/{results.HISTORY_FILE}")):
            out[path.parent.name.removeprefix("trial_")] = storage.read_json(path)
        return out

    def cost(self) -> dict[str, Any]:
        """What the search spent against what it would have without early stopping and Hyperband's rounds.

        Budget: every configuration tried, trained for the search's full epochs. Also when it first
        reached its best validation accuracy, in trials and in epochs trained.
        """
        trials, histories = self.trials, self.histories()
        new = trials["tuner/round"].fillna(0) == 0 if "tuner/round" in trials else np.ones(len(trials), bool)
        trained = int(pd.to_numeric(trials["epochs"], errors="coerce").fillna(0).sum())
        budget = int(np.sum(new)) * self.config.epochs
        progress = results.best_so_far(trials)
        reached = progress[progress["best_val_accuracy"] >= progress["best_val_accuracy"].max()].head(1)
        return {
            "trials": len(trials), "configurations": int(np.sum(new)), "epochs_trained": trained,
            "epochs_budget": budget, "saved": 1 - trained / budget if budget else float("nan"),
            "best_val_accuracy": float(progress["best_val_accuracy"].max()) if len(progress) else float("nan"),
            "best_after_trials": int(reached["trial"].iloc[0]) if len(reached) else None,
            "best_after_epochs": int(reached["cumulative_epochs"].iloc[0]) if len(reached) else None,
            "seconds": float(sum(h.get("seconds", 0.0) for h in histories.values())),
            "started": min((h["started_at"] for h in histories.values() if h.get("started_at")), default=None),
            "ended": max((h["ended_at"] for h in histories.values() if h.get("ended_at")), default=None),
            "machines": machines(h.get("environment") for h in histories.values()),
            "versions": versions(h.get("environment") for h in histories.values()),
        }


def find_searches(directory: Path) -> list[Search]:
    """Every project folder under `directory`; StudyError for an unreadable or foreign folder."""
    if not directory.exists():
        return []
    if not directory.is_dir():
        raise StudyError(f"--directory {directory} is not a directory")
    try:
        folders = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as e:
        raise StudyError(f"cannot read --directory {directory}: {e.strerror}") from None
    return [_read_search(folder, directory) for folder in folders]


def _read_search(folder: Path, directory: Path) -> Search:
    saved = folder / "config.json"
    if not saved.exists():
        raise StudyError(f"{folder} is not a study search (no config.json); move it out of --directory {directory}")
    try:
        raw = storage.read_json(saved)
        if not isinstance(raw, dict) or "tuner" not in raw:  # a report's config.json, or another tool's
            raise StudyError(f"{folder} is not a study search (its config.json is not a search's); move it out "
                             f"of --directory {directory}")
        cfg = SearchConfig.from_dict(raw)
        trials = results.trials_frame(folder)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise StudyError(f"cannot read the search in {folder} ({type(e).__name__}: {e})") from None
    best = results.best_trial(trials) if len(trials) else None
    return Search(folder.name, cfg, trials, best, folder, raw.get("command"))


@dataclass
class Run:
    """One retraining on the training split, evaluated once on the test set."""

    hyperparameters: dict[str, Any]
    seed: int
    history: dict[str, list[float]]  # per epoch: loss, accuracy, val_loss, val_accuracy
    seconds: float
    test_accuracy: float
    test_loss: float
    y_pred: np.ndarray  # predicted class of every test image
    initial_weights: str  # sha1 of the initial weights: equal for runs that started alike
    settings: dict[str, Any] = field(default_factory=dict)  # data, epochs, batch size, backend
    environment: dict[str, Any] = field(default_factory=dict)  # where it ran (study.runtime.environment)
    ended_at: float | None = None  # wall clock
    reused_from: str | None = None  # the report folder it was copied from (--reuse); None: trained for this one
    worker: str | None = None  # the Dask worker that trained it (--scheduler); None: this command's own processes

    @property
    def final_val_accuracy(self) -> float:
        return float(self.history["val_accuracy"][-1])

    @property
    def machine(self) -> str | None:
        """The kind of machine that computed it (`machine_kind`): runs of one kind give the same numbers."""
        return machine_kind(self.environment)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "y_pred": self.y_pred.astype(int).tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Run:
        return cls(**{**d, "y_pred": np.asarray(d["y_pred"], dtype=np.int64)})


def run_key(hyperparameters: dict[str, Any], seed: int, settings: dict[str, Any]) -> str:
    """What makes two runs the same run: equal keys are never trained twice."""
    text = config_key({"hyperparameters": hyperparameters, "seed": seed, "settings": settings})
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def machine_kind(environment: dict[str, Any] | None) -> str | None:
    """The accelerator's model where it trained on one, else the CPU's (study.runtime.environment); None unknown."""
    if not environment:
        return None
    return environment.get("gpu") or environment.get("cpu")


UNPAIRED_FOLDER = "unpaired"  # inside runs/: confirmation runs replaced by a pair trained on one machine


class RunStore:
    """Saved runs in one folder, one JSON file each, written atomically as soon as a run ends.

    `reuse`: other reports' runs folders; a run missing here but saved there with the same settings is
    copied in (marked `reused_from`), so a report folder always holds every run it rests on.
    """

    def __init__(self, folder: Path, settings: dict[str, Any], reuse: tuple[Path, ...] = ()):
        # As a saved run holds them (tuples read back as lists), so that the two compare equal.
        self.folder, self.settings = Path(folder), json.loads(json.dumps(settings))
        self.reuse = tuple(Path(r) for r in reuse)

    def path(self, hyperparameters: dict[str, Any], seed: int) -> Path:
        return self.folder / f"seed{seed}-{run_key(hyperparameters, seed, self.settings)}.json"

    def weights_path(self, hyperparameters: dict[str, Any], seed: int) -> Path:
        """The run's trained weights, beside its record (never committed: .gitignore)."""
        return self.path(hyperparameters, seed).with_suffix(".weights.h5")

    def final_weights_path(self, hyperparameters: dict[str, Any], seed: int) -> Path:
        """The weights of `--final-fit`: this configuration trained on the training and validation images."""
        return self.folder / f"final-{run_key(hyperparameters, seed, self.settings)}.weights.h5"

    def load(self, hyperparameters: dict[str, Any], seed: int, n_test: int | None = None) -> Run | None:
        """The saved run with these hyperparameters, seed and this store's settings, or None."""
        path = self.path(hyperparameters, seed)
        if not path.exists() and not self._copy_reused(path):
            return None
        try:
            run = Run.from_dict(storage.read_json(path))
        except (OSError, ValueError, TypeError, KeyError) as e:
            raise StudyError(f"{path} is unreadable ({type(e).__name__}: {e}); delete it to retrain that run") from None
        if n_test is not None and len(run.y_pred) != n_test:
            raise StudyError(f"{path} holds {len(run.y_pred)} test predictions, not {n_test}; delete it to retrain")
        return run

    def _copy_reused(self, path: Path) -> bool:
        """Copy the run saved as `path.name` in a --reuse folder (and its weights), marked as reused; True if found."""
        for folder in self.reuse:
            theirs = folder / path.name
            if theirs.exists() and theirs.resolve() != path.resolve():
                record = storage.read_json(theirs)
                record["reused_from"] = record.get("reused_from") or str(folder.parent)
                weights = theirs.with_suffix(".weights.h5")
                if weights.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(weights, path.with_suffix(".weights.h5"))
                storage.write_json(path, record)
                return True
        return False

    def save(self, run: Run) -> Path:
        path = self.path(run.hyperparameters, run.seed)
        storage.write_json(path, run.to_dict())
        return path

    def set_aside(self, hyperparameters: dict[str, Any], seed: int) -> Path | None:
        """Move a saved run (and its weights) into runs/unpaired/, kept but no longer used; returns where."""
        path = self.path(hyperparameters, seed)
        if not path.exists():
            return None
        aside = self.folder / UNPAIRED_FOLDER
        aside.mkdir(parents=True, exist_ok=True)
        for p in (path, path.with_suffix(".weights.h5")):
            if p.exists():
                os.replace(p, aside / p.name)
        return aside / path.name

    def other_settings(self, jobs: list[tuple[dict[str, Any], int]]) -> dict[str, int]:
        """{setting: saved runs} of saved runs of these jobs (same hyperparameters and seed) with other settings."""
        wanted = {config_key([hp, seed]) for hp, seed in jobs}
        differing: dict[str, int] = {}
        for path in sorted(self.folder.glob("seed*-*.json")):
            try:
                saved = storage.read_json(path)
            except (OSError, ValueError):
                continue
            same_job = config_key([saved.get("hyperparameters"), saved.get("seed")]) in wanted
            theirs = saved.get("settings", {})
            if same_job and theirs != self.settings:
                for name in sorted(set(theirs) | set(self.settings)):
                    if theirs.get(name) != self.settings.get(name):
                        differing[name] = differing.get(name, 0) + 1
        return differing


def machines(environments) -> list[str]:
    """The distinct machines in these environments (study.runtime.environment), as "CPU model, N cores"."""
    return sorted({f"{e['cpu']}, {e['cores']} cores" for e in environments if e})


def versions(environments) -> list[str]:
    """The distinct software versions in these environments, e.g. "tensorflow 2.21.0, keras 3.15.1, ..."."""
    names = ("backend", "tensorflow", "jax", "torch", "keras", "keras-tuner", "python")
    return sorted({", ".join(f"{n} {e[n]}" for n in names if n in e) for e in environments if e})
