"""What a search learned: which hyperparameters mattered, each trial's learning curve, and parallel coordinates.

Each reads the trials table (`study.results.trials_frame`) and returns what a plot draws; `study.plots` draws it.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from study import storage
from study.results import BUDGET, HISTORY_FILE, MIN_TRIALS, completed, hyperparameter_columns

def hyperparameter_scale(values: pd.Series) -> str:
    """"categorical", "log" or "linear": how a hyperparameter's values are encoded and drawn.

    Text and booleans are categories; numbers are on a log scale for learning_rate, or when they are all positive
    and span more than a factor of 20 (where equal ratios, not equal differences, are what a search varies).
    """
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "categorical"
    present = pd.to_numeric(values.dropna()).astype(float)
    if values.name == "learning_rate" or (len(present) and (present > 0).all() and present.max() > 20 * present.min()):
        return "log"
    return "linear"


def _as_categories(values: pd.Series) -> pd.Series:
    # One type for the encoder and sorting: True/False/None become "True"/"False"/"(none)".
    return values.astype(object).where(values.notna(), "(none)").astype(str)


class Importance(NamedTuple):
    """Permutation importance of each hyperparameter that varied, for a random forest fitted to the completed
    trials: how much that forest's fit (R²) drops when the hyperparameter's values are shuffled."""

    importances: pd.DataFrame  # index: hyperparameter (and tuner/epochs for Hyperband); mean, std; largest first
    n_trials: int  # completed trials it rests on
    needed: int  # completed trials needed; `importances` is empty when n_trials < needed
    fixed: tuple[str, ...]  # hyperparameters with a single value in the completed trials: they cannot matter
    oob_r2: float  # the forest's out-of-bag R²: near 0 or below, the importances rank noise (NaN when not fitted)


def hyperparameter_importance(frame: pd.DataFrame, *, seed: int = 0, n_repeats: int = 10) -> Importance:
    """Which hyperparameters the completed trials' validation accuracy depends on: a hint, not a measurement.

    scikit-learn's RandomForestRegressor is fitted to the trials (categorical hyperparameters one-hot encoded,
    log-scale ones as log10), then `permutation_importance` shuffles one hyperparameter at a time, so a one-hot
    hyperparameter is shuffled as a whole and its importance needs no summing over its columns. Hyperband's
    trials also get their epochs (`tuner/epochs`) as a feature: a 15-epoch round outscores a 2-epoch one
    whatever the configuration, and without it that difference would be credited to the hyperparameters.

    At least MIN_TRIALS completed trials, and 2 per feature: below that a forest's leaves hold one or two
    trials each and the drop in fit when shuffling is mostly noise. `seed` makes the result reproducible.
    """
    done = completed(frame)
    names = hyperparameter_columns(frame)
    varying = [n for n in names if done[n].nunique(dropna=False) > 1]
    fixed = tuple(n for n in names if n not in varying)
    features = varying + ([BUDGET] if BUDGET in done and done[BUDGET].nunique() > 1 else [])
    needed = max(MIN_TRIALS, 2 * len(features))
    empty = pd.DataFrame({"mean": [], "std": []}, index=pd.Index([], name="hyperparameter", dtype=object))
    if len(done) < needed or not varying:
        return Importance(empty, len(done), needed, fixed, math.nan)

    # Imported here: tuners and workers import this module and have no use for scikit-learn.
    from sklearn.inspection import permutation_importance

    x = _feature_frame(done, features)
    y = pd.to_numeric(done["val_accuracy"]).to_numpy(float)
    model = _forest(x, seed)
    model.fit(x, y)
    shuffled = permutation_importance(model, x, y, n_repeats=n_repeats, random_state=seed)
    table = pd.DataFrame(
        {"mean": shuffled.importances_mean, "std": shuffled.importances_std},
        index=pd.Index(features, name="hyperparameter"),
    ).sort_values("mean", ascending=False, kind="stable")
    return Importance(table, len(done), needed, fixed, float(model[-1].oob_score_))


def _feature_frame(done: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    x = pd.DataFrame(index=done.index)
    for name in features:
        if hyperparameter_scale(done[name]) == "categorical":
            x[name] = _as_categories(done[name])
        else:  # float, so that a nullable column's pd.NA becomes the NaN the forest can split on
            x[name] = pd.to_numeric(done[name]).astype(float)
    return x


def _forest(x: pd.DataFrame, seed: int):
    """Encoding and forest in one pipeline, so that permutation_importance shuffles the raw hyperparameters."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    encoders = []
    for name in x.columns:
        scale = hyperparameter_scale(x[name]) if name != BUDGET else "linear"
        if scale == "categorical":
            encoders.append((name, OneHotEncoder(sparse_output=False), [name]))
        elif scale == "log":
            encoders.append((name, FunctionTransformer(np.log10), [name]))
        else:
            encoders.append((name, "passthrough", [name]))
    # 100 trees: tens of trials need no more, and shuffling calls predict n_repeats times per feature.
    forest = RandomForestRegressor(n_estimators=100, oob_score=True, random_state=seed, n_jobs=1)
    return make_pipeline(ColumnTransformer(encoders), forest)


def learning_curves(project_dir: str | Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Validation accuracy per epoch of every trial with a history.json, one row per trial and epoch.

    Columns: trial_id, parent (the trial whose weights it continues, Hyperband's tuner/trial_id, else missing),
    line (the first trial of that chain: a configuration's rounds share one line), optimizer, status, epoch
    (1-based and absolute: Keras's history lists only the epochs of its own fit, so a round that continues
    at tuner/initial_epoch 5 records epochs 6, 7, ...), val_accuracy.
    """
    columns = ["trial_id", "parent", "line", "optimizer", "status", "epoch", "val_accuracy"]
    records = frame.to_dict("records")
    parents = {str(r["trial_id"]): _text(r.get("tuner/trial_id")) for r in records}
    rows = []
    for record in records:
        trial_id = str(record["trial_id"])
        path = Path(project_dir) / f"trial_{trial_id}" / HISTORY_FILE
        if not path.exists():  # a trial still running, or run by a worker with its own directory
            continue
        saved = storage.read_json(path)
        values = saved.get("history", {}).get("val_accuracy", [])
        # Where the fit started: history.json says (a Hyperband round whose checkpoint was lost starts
        # at 0); files written before it did follow Keras Tuner's tuner/initial_epoch.
        start = saved.get("initial_epoch", record.get("tuner/initial_epoch"))
        start = 0 if start is None or pd.isna(start) else int(start)
        common = {"trial_id": trial_id, "parent": parents[trial_id], "line": _first_of_chain(trial_id, parents),
                  "optimizer": _text(record.get("optimizer")), "status": record.get("status")}
        for i, value in enumerate(values):
            rows.append({**common, "epoch": start + i + 1, "val_accuracy": math.nan if value is None else value})
    curves = pd.DataFrame(rows, columns=columns)
    curves["epoch"] = curves["epoch"].astype(int)
    curves["val_accuracy"] = curves["val_accuracy"].astype(float)
    return curves


def _text(value) -> str | None:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _first_of_chain(trial_id: str, parents: dict[str, str | None]) -> str:
    seen = {trial_id}
    while parents.get(trial_id) is not None and parents[trial_id] not in seen:  # `seen`: a corrupt file's cycle
        trial_id = parents[trial_id]
        seen.add(trial_id)
    return trial_id


class ParallelAxis(NamedTuple):
    """One vertical axis: where its ticks sit in [0, 1] and what they read."""

    name: str
    scale: str  # "categorical", "log" or "linear"
    ticks: tuple[float, ...]
    labels: tuple[str, ...]


class ParallelCoordinates(NamedTuple):
    """What a parallel-coordinates plot draws: every completed trial's position on each axis."""

    axes: tuple[ParallelAxis, ...]  # the hyperparameters that vary, then val_accuracy
    positions: pd.DataFrame  # index trial_id, one column per axis, values in [0, 1] (NaN: not set in that trial)
    scores: pd.Series  # val_accuracy per trial_id: the lines' colour
    fixed: dict[str, object]  # hyperparameters with a single value, left out: an axis would add nothing


def parallel_coordinates(frame: pd.DataFrame) -> ParallelCoordinates:
    """Each completed trial's hyperparameters and score, each mapped to [0, 1] along its own axis:
    categories evenly spaced (sorted), log-scale values by their log10, the rest linearly between min and max."""
    done = completed(frame)
    index = pd.Index(done["trial_id"].astype(str) if len(done) else [], name="trial_id", dtype=object)
    names = hyperparameter_columns(frame)
    varying = [n for n in names if done[n].nunique(dropna=False) > 1]
    fixed = {n: _plain(done[n].iloc[0]) for n in names if n not in varying and len(done)}
    axes, positions = [], pd.DataFrame(index=index)
    scores = pd.Series(pd.to_numeric(done["val_accuracy"]).to_numpy(float), index=index, name="val_accuracy")
    for name in varying:
        axis, position = _parallel_axis(done[name].set_axis(index), hyperparameter_scale(done[name]))
        axes.append(axis)
        positions[name] = position
    axis, position = _parallel_axis(scores, "linear", nice_ticks=True)  # accuracies: never a log axis
    axes.append(axis)
    positions["val_accuracy"] = position
    return ParallelCoordinates(tuple(axes), positions, scores, fixed)


def _parallel_axis(values: pd.Series, scale: str, *, nice_ticks: bool = False) -> tuple[ParallelAxis, pd.Series]:
    if scale == "categorical":
        text = _as_categories(values)
        categories = sorted(text.unique())
        spot = {c: i / (len(categories) - 1) if len(categories) > 1 else 0.5 for i, c in enumerate(categories)}
        return ParallelAxis(str(values.name), scale, tuple(spot.values()), tuple(categories)), text.map(spot)
    numbers = pd.to_numeric(values).astype(float)
    to_axis = np.log10 if scale == "log" else (lambda v: v)
    low, high = to_axis(numbers).min(), to_axis(numbers).max()

    def place(v):  # v * 0 + 0.5: a single value sits in the middle, and a missing one stays NaN
        return (to_axis(v) - low) / (high - low) if high > low else v * 0 + 0.5

    ticks = _axis_ticks(numbers.dropna(), scale, nice=nice_ticks)
    labels = _log_labels(ticks) if scale == "log" else _exact_labels(ticks)
    return ParallelAxis(str(values.name), scale, tuple(float(t) for t in place(ticks)), labels), place(numbers)


def _axis_ticks(values: pd.Series, scale: str, *, nice: bool) -> np.ndarray:
    """The values themselves when there are few (a search's lists), else round numbers within their range."""
    unique = np.unique(values.to_numpy(float))
    if (len(unique) <= 6 and not nice) or len(unique) <= 1:
        return unique
    low, high = unique[0], unique[-1]
    if scale == "log":
        powers = 10.0 ** np.arange(math.ceil(math.log10(low)), math.floor(math.log10(high)) + 1)
        return powers if len(powers) >= 2 else np.unique(np.concatenate([[low], powers, [high]]))
    from matplotlib.ticker import MaxNLocator

    ticks = MaxNLocator(nbins=5).tick_values(low, high)
    return ticks[(ticks >= low - 1e-9 * abs(low)) & (ticks <= high + 1e-9 * abs(high))]


def _exact_labels(ticks: np.ndarray) -> tuple[str, ...]:
    """The fewest significant digits that still read back as each tick, e.g. 0.1, 0.575, 3."""
    for digits in range(1, 7):
        labels = tuple(f"{t:.{digits}g}" for t in ticks)
        if all(math.isclose(float(s), t, rel_tol=1e-9, abs_tol=1e-12) for s, t in zip(labels, ticks)):
            return labels
    return tuple(f"{t:.4g}" for t in ticks)


def _log_labels(ticks: np.ndarray) -> tuple[str, ...]:
    """1e-4, 3e-4, 1e-3 for values below 1 (how learning rates are written); plain numbers otherwise."""
    if len(ticks) and ticks.max() >= 1:
        return _exact_labels(ticks)
    labels = []
    for t in ticks:
        exponent = math.floor(math.log10(t))
        mantissa = float(f"{t / 10 ** exponent:.2g}")
        if mantissa >= 10:  # 9.99e-4 rounds up to 10e-4
            mantissa, exponent = mantissa / 10, exponent + 1
        labels.append(f"{mantissa:g}e{exponent}")
    return tuple(labels)
