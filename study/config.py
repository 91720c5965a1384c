"""Configuration: the notebook's baseline, the data source, the search space and the search settings.

Each command builds one configuration object from its flags, passes it down explicitly and
saves it as JSON beside its results, so a result can always be traced to what produced it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OPTIMIZERS = ("adam", "sgd", "rmsprop")
TUNERS = ("grid", "bayesian", "hyperband")
AUGMENTATIONS = ("none", "flip", "flip_translate")  # study.augment: what each does to the training images
SCHEDULES = ("constant", "cosine")  # study.recipe: the learning rate over a run's epochs
# Hyperparameter names the training path applies, for every model (study.recipe): a search varies them with
# --batch-sizes etc. for the notebook's CNN, or a --model function declares them with hp.Choice.
TRAINING_HYPERPARAMETERS = ("batch_size", "augmentation", "schedule", "weight_decay", "label_smoothing")


# What a retraining's numbers depend on beyond its settings, in a saved run's key: runs of an older training
# path are never reused. 2: initial weights and dropout streams seeded per layer (study.seeding), augmentation
# drawn per image (study.augment); runs without a version were trained before.
RUN_VERSION = 2


def config_key(value: Any) -> str:
    """What identifies a configuration (its hyperparameters, or any JSON value made of them), in any key order."""
    return json.dumps(value, sort_keys=True)


class StudyError(ValueError):
    """Bad input: the commands print its one-line message and exit with status 2."""


@dataclass(frozen=True)
class Baseline:
    """The notebook's CNN and training recipe; every default in `study` comes from here."""

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    dropout_1: float = 0.2  # after the first Conv32-Pool block
    dropout_2: float = 0.3  # after the second Conv64-Pool block
    dropout_3: float = 0.4  # after Dense128
    epochs: int = 15
    batch_size: int = 64
    augmentation: str = "none"  # the notebook trains on the images as they are
    schedule: str = "constant"  # and at one learning rate throughout
    weight_decay: float = 0.0  # decoupled (Keras optimizers' weight_decay); 0: none
    label_smoothing: float = 0.0
    val_fraction: float = 0.2  # train_test_split(test_size=0.2, random_state=42)
    split_seed: int = 42

    def hyperparameters(self) -> dict[str, Any]:
        """The model's and optimizer's hyperparameters: what a search varies by default and a run records.

        The training hyperparameters (`training()`) are left out: a run that does not name them trains with
        these defaults, and the runs saved before they existed keep their keys.
        """
        return {
            "optimizer": self.optimizer,
            "learning_rate": self.learning_rate,
            "dropout_1": self.dropout_1,
            "dropout_2": self.dropout_2,
            "dropout_3": self.dropout_3,
        }

    def training(self) -> dict[str, Any]:
        """The notebook's value of each of TRAINING_HYPERPARAMETERS."""
        return {name: getattr(self, name) for name in TRAINING_HYPERPARAMETERS}


BASELINE = Baseline()

# The notebook's optimizer comparison, each at Keras's default learning rate (what
# `compile(optimizer="sgd")` gives); the searches explore other learning rates.
OPTIMIZER_COMPARISON = {"adam": BASELINE.learning_rate, "sgd": 1e-2, "rmsprop": 1e-3}

# What the notebook itself reported on the official CIFAR-10 pixels: its baseline's test accuracy,
# and the validation accuracy at epoch 15 of each optimizer, where SGD and RMSprop continued
# training the Adam model's weights rather than starting afresh.
NOTEBOOK_TEST_ACCURACY = 0.7012
NOTEBOOK_VAL_ACCURACY = {"adam": 0.7042, "sgd": 0.6950, "rmsprop": 0.6814}


def model_identity(spec: str | None) -> dict[str, str] | None:
    """What identifies `--model MODULE:FUNCTION` or `--model path/to/file.py:FUNCTION`: the spec and the
    sha1 of its source file, read without importing it; None for the notebook's CNN.

    Recorded in config.json: a project searched with other model code is not resumed.
    """
    if spec is None:
        return None
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise StudyError(f"--model must be MODULE:FUNCTION or path/to/file.py:FUNCTION, got {spec!r}")
    if where.endswith(".py"):
        source = Path(where)
    else:
        try:
            found = importlib.util.find_spec(where)
        except (ImportError, ValueError) as e:
            raise StudyError(f"--model {spec}: cannot find module {where} ({e})") from None
        source = Path(found.origin) if found is not None and found.origin else None
        if source is None:
            raise StudyError(f"--model {spec}: no module named {where}")
    if not source.is_file():
        raise StudyError(f"--model {spec}: no such file {source}")
    return {"spec": spec, "sha1": hashlib.sha1(source.read_bytes()).hexdigest()}


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are split; identical for search and report."""

    # None: keras.datasets.cifar10 (Keras cache / download); "arrays:sha1:...": arrays in memory (study.arrays)
    data_dir: str | None = None
    subset: int | None = None  # stratified subset of the training images (test shrinks in proportion)
    image_size: tuple[int, int] = (32, 32)  # (height, width)
    channels: int = 3
    val_fraction: float = BASELINE.val_fraction
    split_seed: int = BASELINE.split_seed  # validation split and subset sampling
    test_fraction: float = 0.2  # only for folders without train/ and test/

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataConfig:
        d = dict(d)
        d["image_size"] = tuple(d.get("image_size", (32, 32)))
        return cls(**d)


@dataclass(frozen=True)
class SearchSpace:
    """Explicit, finite value lists (hp.Choice); the first trial of a grid is the baseline."""

    optimizers: tuple[str, ...] = OPTIMIZERS
    learning_rates: tuple[float, ...] = (1e-3, 1e-4, 1e-2)
    dropout_1: tuple[float, ...] = (BASELINE.dropout_1,)
    dropout_2: tuple[float, ...] = (BASELINE.dropout_2,)
    dropout_3: tuple[float, ...] = (BASELINE.dropout_3,)
    # The training hyperparameters: empty, the notebook's value and no hyperparameter at all (so a search
    # without these flags has the space, trials and numbers it had before they existed).
    batch_sizes: tuple[int, ...] = ()
    augmentations: tuple[str, ...] = ()
    schedules: tuple[str, ...] = ()
    weight_decays: tuple[float, ...] = ()
    label_smoothings: tuple[float, ...] = ()

    def values(self) -> dict[str, tuple]:
        """{hyperparameter: its choices}, in the order they are declared; training ones only when searched."""
        values = {
            "optimizer": self.optimizers,
            "learning_rate": self.learning_rates,
            "dropout_1": self.dropout_1,
            "dropout_2": self.dropout_2,
            "dropout_3": self.dropout_3,
        }
        return {**values, **{k: v for k, v in self.training().items() if v}}

    def training(self) -> dict[str, tuple]:
        """{training hyperparameter: its choices} (empty: not searched)."""
        lists = (self.batch_sizes, self.augmentations, self.schedules, self.weight_decays, self.label_smoothings)
        return dict(zip(TRAINING_HYPERPARAMETERS, lists))

    @classmethod
    def for_tuner(cls, tuner: str) -> SearchSpace:
        """The default space: a 9-point grid, or wider lists where a tuner samples rather than enumerates."""
        if tuner == "grid":
            return cls()
        return cls(
            learning_rates=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
            dropout_1=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
            dropout_2=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
            dropout_3=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
        )

    def validate(self) -> None:
        bad = [o for o in self.optimizers if o not in OPTIMIZERS]
        if bad:
            raise StudyError(f"unknown optimizer {bad[0]!r}; choose from {', '.join(OPTIMIZERS)}")
        if any(not lr > 0 for lr in self.learning_rates):
            raise StudyError(f"learning rates must be > 0, got {list(self.learning_rates)}")
        for name in ("dropout_1", "dropout_2", "dropout_3"):
            if any(not 0 <= d < 1 for d in getattr(self, name)):
                raise StudyError(f"{name} rates must be in [0, 1), got {list(getattr(self, name))}")
        validate_training({name: values for name, values in self.training().items() if values}, "--{}s")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchSpace:
        return cls(**{k: tuple(v) for k, v in d.items()})


def validate_training(choices: dict[str, Any], flag: str = "{}", n_train: int | None = None) -> None:
    """StudyError (one line) for a training hyperparameter value no run can train with.

    `choices`: {name: its values} of any of TRAINING_HYPERPARAMETERS; `flag` names them in the message
    ("--{}s": the search's flags); `n_train`: the training images, which no batch may outnumber.
    """
    def name(key: str) -> str:
        return flag.format(key.replace("_", "-") if flag.startswith("--{}") else key)

    for key, values in choices.items():
        values = list(values)
        if key == "batch_size":
            if any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values):
                raise StudyError(f"{name(key)} must be whole numbers > 0, got {values}")
            if n_train is not None and max(values) > n_train:
                raise StudyError(f"{name(key)} {max(values)} is larger than the {n_train} training images")
        elif key in ("augmentation", "schedule"):
            known = AUGMENTATIONS if key == "augmentation" else SCHEDULES
            bad = [v for v in values if v not in known]
            if bad:
                raise StudyError(f"unknown {key} {bad[0]!r} in {name(key)}; choose from {', '.join(known)}")
        elif key == "weight_decay" and any(not v >= 0 for v in values):
            raise StudyError(f"{name(key)} must be >= 0, got {values}")
        elif key == "label_smoothing" and any(not 0 <= v < 1 for v in values):
            raise StudyError(f"{name(key)} must be in [0, 1), got {values}")


@dataclass(frozen=True)
class SearchConfig:
    """Everything `python -m study.search` needs; saved as config.json in the project folder."""

    tuner: str = "grid"
    directory: str = "tuner_results"
    project_name: str | None = None  # None: the tuner's name
    max_trials: int | None = None  # None: the whole grid; 10 for bayesian
    epochs: int = BASELINE.epochs
    batch_size: int = BASELINE.batch_size
    seed: int = 1  # hyperparameter sampling and weight initialisation
    early_stopping: int | None = 3  # patience on val_loss; None: off
    initial_points: int | None = None  # bayesian: random trials first; None: a third of max_trials
    overwrite: bool = False
    # Distributed tuning (Keras Tuner's chief/worker mode); None: one process, or the environment's
    # KERASTUNER_* variables when they are set.
    role: str | None = None  # "chief" or "worker"
    oracle: str | None = None  # HOST:PORT the chief listens on / the workers call
    worker_id: int | None = None  # a worker's KERASTUNER_TUNER_ID is tuner<worker_id>
    # Trials at once on this machine (a chief and as many workers on 127.0.0.1); None: 1 on a CPU,
    # the report's side-by-side rule on a GPU (study.devices). Changes when trials run, not what they are.
    parallel: int | None = None
    tensorboard: str | None = None  # TensorBoard logs of every trial under <tensorboard>/<name>/; None: none
    model: dict[str, str] | None = None  # model_identity(--model); None: the notebook's CNN
    # Keras's backend (runtime.keras_backend): trials on another backend are other numbers. A config.json
    # without it was written before study ran on other backends, on TensorFlow.
    backend: str = "tensorflow"
    data: DataConfig = field(default_factory=DataConfig)
    space: SearchSpace = field(default_factory=SearchSpace)

    @property
    def name(self) -> str:
        return self.project_name or self.tuner

    @property
    def project_dir(self) -> Path:
        return Path(self.directory) / self.name

    @property
    def tensorboard_dir(self) -> Path | None:
        """This project's TensorBoard logs, a folder per trial inside: searches sharing a folder never mix."""
        return Path(self.tensorboard) / self.name if self.tensorboard else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise StudyError for values no search can run with."""
        for name in ("max_trials", "epochs", "batch_size", "initial_points", "subset"):
            value = getattr(self.data if name == "subset" else self, name)
            if value is not None and value <= 0:
                raise StudyError(f"--{name.replace('_', '-')} must be > 0, got {value}")
        if self.early_stopping is not None and self.early_stopping < 0:
            raise StudyError(f"--early-stopping must be >= 0, got {self.early_stopping}")
        if self.seed < 0:
            raise StudyError(f"--seed must be >= 0, got {self.seed}")
        if self.worker_id is not None and self.worker_id < 0:
            raise StudyError(f"--worker-id must be >= 0, got {self.worker_id}")
        if self.parallel is not None and self.parallel <= 0:
            raise StudyError(f"--parallel must be > 0, got {self.parallel}")
        if self.parallel is not None and self.role is not None:
            raise StudyError("--parallel starts its own chief and workers on this machine: not with --role")
        if self.role is None and (self.oracle or self.worker_id is not None):
            raise StudyError("--oracle and --worker-id go with --role chief|worker")
        if self.role == "worker" and self.overwrite:
            raise StudyError("--overwrite is for the chief: a worker must not delete the shared project")
        if self.oracle:
            host, _, port = self.oracle.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise StudyError(f"--oracle must be HOST:PORT, got {self.oracle!r}")
        if self.tensorboard and self.backend != "tensorflow":
            raise StudyError(f"--tensorboard needs Keras's TensorFlow backend, not {self.backend}: Keras's TensorBoard "
                             "callback writes with tf.summary, and Keras Tuner gives each trial its own log folder and "
                             "its hyperparameters only on TensorFlow (KERAS_BACKEND=tensorflow)")
        if self.tuner not in TUNERS:
            raise StudyError(f"unknown tuner {self.tuner!r}; choose from {', '.join(TUNERS)}")
        # The notebook's CNN: two valid 3x3 convolutions, each before a 2x2 pooling, leave 0x0 below 10x10.
        if self.model is None and min(self.data.image_size) < 10:
            raise StudyError("--image-size must be at least 10x10 for the notebook's CNN (two 3x3 conv, 2x2 pool "
                             f"blocks), got {'x'.join(map(str, self.data.image_size))}")
        self.space.validate()

    # How a search is run, not what it searches: a resume may change these.
    _HOW = frozenset({
        "max_trials", "overwrite", "directory", "project_name", "role", "oracle", "worker_id", "parallel",
        "tensorboard",  # where logs go, not what is searched: a resume may add or drop it
    })

    def identity(self) -> dict[str, Any]:
        """What makes this search's trials what they are (space, data, training, seed, model, backend)."""
        return {k: v for k, v in self.to_dict().items() if k not in self._HOW}

    def differences(self, old: SearchConfig) -> list[str]:
        """What differs from `old` in a way that makes its trials incomparable (max_trials may grow)."""
        mine, theirs = self.identity(), old.identity()
        return [k for k in mine if mine[k] != theirs.get(k)]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchConfig:
        """Inverse of `to_dict`; other keys (config.json also records the class names) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        d["data"] = DataConfig.from_dict(d.get("data", {}))
        d["space"] = SearchSpace.from_dict(d.get("space", {}))
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> SearchConfig:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True)
class ReportConfig:
    """Everything `python -m study.report` needs; printed at start and saved as config.json in the report."""

    directory: str = "tuner_results"  # where the searches are
    output: str = "reports"  # the report folder (its runs/ subfolder keeps every retraining)
    epochs: int = BASELINE.epochs  # every retraining, no early stopping (as the notebook)
    seeds: int = 5  # the race's seeds, seed..seed+K-1 (docs/report.md: why 5)
    model: dict[str, str] | None = None  # model_identity(--model); None: the notebook's CNN
    # The race's first seed: by default the one after the largest seed any search trained with (every trial of a
    # search trains with its seed), so that no retraining repeats a search trial (docs/report.md, "Seeds").
    seed: int = 1
    # Seeds of the confirmation, right after the race's: the challenger and the baseline only, and they decide
    # (0: the race's own runs decide, an exploratory claim).
    confirm_seeds: int = 5
    batch_size: int = BASELINE.batch_size
    data: DataConfig = field(default_factory=DataConfig)
    data_from: str = "flags"  # "flags", "search <name>" (its config.json) or "default"
    final_fit: bool = False  # also train the recommendation on training + validation images (models/final.keras)
    backend: str = "tensorflow"  # Keras's backend of the retrainings (runtime.keras_backend)
    parallel: int = 1  # retrainings side by side, in as many processes (1: one after another)
    candidates: int | None = None  # the N best distinct searched configurations; None: each search's best
    min_seeds: int = 2  # seeds every arm runs before racing may drop it (>= seeds: no racing; docs/racing.md)
    reuse: tuple[str, ...] = ()  # other reports' folders whose saved runs of the same settings are reused
    # A Dask scheduler whose workers train the runs (study.cluster); None: this machine, --parallel at a time.
    scheduler: str | None = None
    # TensorFlow's threads in every retraining (intra- and inter-op): the count changes the numbers. None: its
    # default, the cores of the process's machine; with --scheduler, this machine's, so a worker trains what it would.
    threads: int | None = None
    # The recipe every arm is compared with, as changes to the model's defaults ({}: the notebook's, or the model's).
    baseline: dict[str, Any] = field(default_factory=dict)
    # The optimizer arms, each at Keras's default learning rate, the baseline's other values; None: SGD and RMSprop
    # for the notebook's CNN, none for a --model.
    compare_optimizers: tuple[str, ...] | None = None
    # {search name: SearchConfig.identity()}: the searches whose winners this report retrains. More
    # trials of the same searches are the same report; other searches are another report.
    searches: dict[str, dict[str, Any]] = field(default_factory=dict)

    # What makes a report folder's saved runs and rendering this report's: --seeds may grow (it only
    # adds seeds), --parallel and --final-fit change how, not what.
    _WHAT = ("searches", "data", "epochs", "batch_size", "seed", "model", "backend", "baseline", "compare_optimizers")

    @property
    def optimizers_compared(self) -> tuple[str, ...]:
        if self.compare_optimizers is not None:
            return self.compare_optimizers
        return tuple(o for o in OPTIMIZER_COMPARISON if o != BASELINE.optimizer) if self.model is None else ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differences(self, old: dict[str, Any]) -> list[str]:
        """What differs from a report folder's config.json (a key it lacks, from an older study, is not compared)."""
        mine = json.loads(json.dumps(self.to_dict()))  # tuples as lists, like the file
        if isinstance(old.get("searches"), dict):
            # Read back through SearchConfig, as a search's own config.json is: a field added to the search
            # space since (with its default) is the same search.
            old = {**old, "searches": {name: json.loads(json.dumps(SearchConfig.from_dict(d).identity()))
                                       for name, d in old["searches"].items()}}
        return [k for k in self._WHAT if k in old and mine[k] != old[k]]

    @property
    def race_seeds(self) -> range:
        return range(self.seed, self.seed + self.seeds)

    @property
    def confirmation_seeds(self) -> range:
        return range(self.seed + self.seeds, self.seed + self.seeds + self.confirm_seeds)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReportConfig:
        """Inverse of `to_dict` (a report's config.json); keys of other versions are ignored, missing ones default."""
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        d["data"] = DataConfig.from_dict(d.get("data", {}))
        for name in ("reuse", "compare_optimizers"):
            if d.get(name) is not None:
                d[name] = tuple(d[name])
        return cls(**d)

    def settings(self, backend: str) -> dict[str, Any]:
        """What a saved run must share with this report to be reused: data, model, training settings and the
        version of the training path (RUN_VERSION)."""
        return {"data": dataclasses.asdict(self.data), "epochs": self.epochs, "batch_size": self.batch_size,
                "backend": backend, "model": self.model, "version": RUN_VERSION}
