"""Results: one DataFrame of a search's trials, read from the project folder; tables, CSV and plots read it."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from study import storage

HISTORY_FILE = "history.json"  # per trial, written by study.tuners: per-epoch metrics, epochs, seconds

HYPERPARAMETERS = ("optimizer", "learning_rate", "dropout_1", "dropout_2", "dropout_3")
METRIC_COLUMNS = ("val_accuracy", "val_loss", "best_epoch", "epochs", "seconds")


def trials_frame(project_dir: str | Path) -> pd.DataFrame:
    """One row per trial: id, status, hyperparameters, best val accuracy, val loss at that epoch,
    the (1-based) epoch of the best score, epochs run, seconds, and the error of a failed trial."""
    rows = []
    for path in sorted(Path(project_dir).glob("trial_*/trial.json")):
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
                "error": message[-1] if message and status != "COMPLETED" else "",
            }
        )
    columns = ["trial_id", "status", *HYPERPARAMETERS, *METRIC_COLUMNS, "error"]
    frame = pd.DataFrame(rows, columns=columns + sorted({k for r in rows for k in r} - set(columns)))
    for column in ("best_epoch", "epochs"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _metric_at(metrics: dict, name: str, step) -> float | None:
    for obs in metrics.get(name, {}).get("observations", []):
        if obs.get("step") == step:
            value = obs["value"]
            value = value[0] if isinstance(value, list) else value
            return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
    return None


def markdown_table(frame: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """GitHub Markdown; text columns stay text (tabulate would turn trial id "0003" into 3)."""
    text = [i for i, kind in enumerate(frame.dtypes) if not pd.api.types.is_numeric_dtype(kind)]
    frame = frame.copy()
    for i in text:  # missingval only replaces None, not NaN
        column = frame.iloc[:, i]
        frame.isetitem(i, column.astype(object).where(column.notna(), None))
    return tabulate(frame, headers="keys", tablefmt="github", showindex=False, floatfmt=floatfmt,
                    missingval="", disable_numparse=text)  # fmt: skip


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
    ordered = frame.sort_values("trial_id", key=lambda s: s.astype(str)).reset_index(drop=True)
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
    done = frame[(frame["status"] == "COMPLETED") & frame["val_accuracy"].notna()]
    if done.empty:
        return None
    done = done.sort_values("trial_id", key=lambda s: s.astype(str), kind="stable")
    return done.loc[pd.to_numeric(done["val_accuracy"]).idxmax()]
