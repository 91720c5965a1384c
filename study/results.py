"""Results: one DataFrame of a search's trials, read from the project folder; tables, CSV and plots read it."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from study import storage

HISTORY_FILE = "history.json"  # per trial, written by study.tuners: per-epoch metrics, epochs, seconds

HYPERPARAMETERS = ("optimizer", "learning_rate", "dropout_1", "dropout_2", "dropout_3")
METRIC_COLUMNS = ("val_accuracy", "val_loss", "best_epoch", "epochs", "seconds")


def trials_frame(project_dir: str | Path) -> pd.DataFrame:
    """One row per trial: id, status, hyperparameters, best val accuracy, val loss at that epoch,
    the (1-based) epoch of the best score, epochs run, seconds, the worker that ran it, and the error of a failed
    trial."""
    rows = []
    for path in sorted(Path(project_dir).glob("trial_*/trial.json"), key=lambda p: run_order(p.parent.name[6:])):
        trial = json.loads(path.read_text())
        extra_path = path.parent / HISTORY_FILE
        extra = storage.read_json(extra_path) if extra_path.exists() else {}
        metrics = trial.get("metrics", {}).get("metrics", {})
        status = trial.get("status")
        message = (trial.get("message") or "").strip().splitlines()
        best_step = trial.get("best_step")
        rows.append(
            {
                "trial_id": trial["trial_id"],
                "status": status,
                **trial["hyperparameters"]["values"],
                "val_accuracy": trial.get("score") if status == "COMPLETED" else None,
                "val_loss": _metric_at(metrics, "val_loss", best_step),
                "best_epoch": best_step + 1 if best_step is not None and status == "COMPLETED" else None,
                "epochs": extra.get("epochs"),
                "seconds": extra.get("seconds"),
                "worker": extra.get("tuner_id"),  # which process trained it: tuner0, tuner1... (--parallel)
                "error": message[-1] if message and status != "COMPLETED" else "",
            }
        )
    # The hyperparameters in the order they were declared (the notebook CNN's: HYPERPARAMETERS), then the
    # metrics; Keras Tuner's own tuner/ values (Hyperband's rounds) last.
    declared = list(dict.fromkeys(k for r in rows for k in r if k not in ("trial_id", "status", *METRIC_COLUMNS,
                                                                           "worker", "error")))
    declared = [k for k in declared if not k.startswith("tuner/")] or list(HYPERPARAMETERS)
    columns = ["trial_id", "status", *declared, *METRIC_COLUMNS, "worker", "error"]
    frame = pd.DataFrame(rows, columns=columns + sorted({k for r in rows for k in r} - set(columns)))
    for column in ("best_epoch", "epochs"):
        frame[column] = frame[column].astype("Int64")
    return frame


def run_order(trial_id: str) -> tuple[int, str]:
    """Sort key of trial ids in the order the trials were created.

    Keras Tuner numbers trials from 0, zero-padded to the digits of max_trials, so a search raised
    from --max-trials 9 to 12 has ids 0..8, 09, 10, 11: as text, 09 would come before 1.
    """
    trial_id = str(trial_id)
    return (int(trial_id), trial_id) if trial_id.isdigit() else (-1, trial_id)


def _metric_at(metrics: dict, name: str, step) -> float | None:
    for obs in metrics.get(name, {}).get("observations", []):
        if obs.get("step") == step:
            value = obs["value"]
            value = value[0] if isinstance(value, list) else value
            return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
    return None


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """GitHub Markdown; text columns stay text (tabulate would turn trial id "0003" into 3)."""
    if frame.empty:  # tabulate cannot type the columns of no rows
        return tabulate([], headers=list(frame.columns), tablefmt="github")
    text = [i for i, kind in enumerate(frame.dtypes) if not pd.api.types.is_numeric_dtype(kind)]
    frame = frame.copy()
    for i in text:  # missingval only replaces None, not NaN
        column = frame.iloc[:, i]
        frame.isetitem(i, column.astype(object).where(column.notna(), None))
    return tabulate(frame, headers="keys", tablefmt="github", showindex=False, floatfmt=floatfmt,
                    missingval="", disable_numparse=text)


def write_tables(frame: pd.DataFrame, project_dir: str | Path) -> None:
    """trials.csv and trials.md beside Keras Tuner's state, each written atomically."""
    project_dir = Path(project_dir)
    storage.write_text(project_dir / "trials.csv", frame.to_csv(index=False))
    storage.write_text(project_dir / "trials.md", markdown_table(frame) + "\n")


# --- for the report: search progress and the best trial ----------------------------------------

def best_so_far(frame: pd.DataFrame) -> pd.DataFrame:
    """Per trial in run order: trial number (1-based), cumulative epochs trained, best val accuracy so far.

    Failed trials count (they cost epochs) but never raise the best; rows before the first
    completed trial have no best (NaN).
    """
    ordered = frame.sort_values("trial_id", key=lambda s: s.map(run_order)).reset_index(drop=True)
    epochs = pd.to_numeric(ordered["epochs"], errors="coerce").fillna(0)
    scores = pd.to_numeric(ordered["val_accuracy"], errors="coerce")
    scores = scores.where(ordered["status"] == "COMPLETED")
    return pd.DataFrame(
        {
            "trial": range(1, len(ordered) + 1),
            "trial_id": ordered["trial_id"].astype(str),
            "cumulative_epochs": epochs.cumsum().astype(int),
            "best_val_accuracy": scores.cummax().ffill(),
        }
    )


def best_trial(frame: pd.DataFrame) -> pd.Series | None:
    """The completed trial with the highest validation accuracy (the earliest on a tie); None if none completed."""
    done = completed(frame)
    if done.empty:
        return None
    done = done.sort_values("trial_id", key=lambda s: s.map(run_order), kind="stable")
    return done.loc[pd.to_numeric(done["val_accuracy"]).idxmax()]


# --- the trials' hyperparameters and the completed ones --------------------------------------

# Columns of trials_frame that describe a trial's outcome, not its configuration.
_OUTCOME_COLUMNS = frozenset({"trial_id", "status", "worker", "error", *METRIC_COLUMNS})
BUDGET = "tuner/epochs"  # Hyperband's epochs for a trial: explains part of its score, but is no hyperparameter
MIN_TRIALS = 8  # the fewest completed trials an importance rests on (hyperparameter_importance says why)


def hyperparameter_columns(frame: pd.DataFrame) -> list[str]:
    """The frame's hyperparameters, in column order: every column that is neither an outcome nor Hyperband's own
    (`tuner/...`), so that a user's model with hyperparameters of its own needs no list kept here."""
    return [c for c in frame.columns if c not in _OUTCOME_COLUMNS and not str(c).startswith("tuner/")]


def completed(frame: pd.DataFrame) -> pd.DataFrame:
    """The completed trials with a score: what a best trial, a candidate and an insight are taken from."""
    return frame[(frame["status"] == "COMPLETED") & frame["val_accuracy"].notna()]


def trial_hyperparameters(trial: pd.Series, frame: pd.DataFrame) -> dict[str, Any]:
    """A trials-table row's hyperparameters as the Python values Keras Tuner gave the model (str, bool, int, float)."""
    out = {}
    for name in hyperparameter_columns(frame):
        value = trial[name]
        if isinstance(value, (bool, np.bool_)):
            out[name] = bool(value)
        elif isinstance(value, (int, np.integer)):
            out[name] = int(value)
        elif isinstance(value, (float, np.floating)):
            out[name] = float(value)
        else:
            out[name] = str(value)
    return out
