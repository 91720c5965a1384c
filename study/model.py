"""The models a study trains: the notebook's CNN, or the user's own model function, compiled one way.

A model function is `build(hp, input_shape, num_classes) -> keras.Model`: it returns an uncompiled
model, and the hyperparameters it declares (`hp.Choice`, `hp.Int`, `hp.Float`, `hp.Boolean`) join
the search. `study` adds the optimizer and the learning rate, and compiles. The notebook's CNN is
the default model function (`--model` names another), so both go through the same code.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import keras_tuner

from study import recipe, seeding
from study.config import BASELINE, OPTIMIZERS, StudyError, model_identity

_OPTIMIZER_CLASSES = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}
assert tuple(_OPTIMIZER_CLASSES) == OPTIMIZERS


def notebook_cnn(hp: keras_tuner.HyperParameters, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Conv32-Pool-Drop, Conv64-Pool-Drop, Dense128-Drop, Dense softmax: the notebook's CNN.

    Its three dropout rates are its own hyperparameters, defaulting to the notebook's. The values a
    search tries come from `--dropout1/2/3`, which the HyperModel declares before calling this.
    """
    rates = [hp.Choice(f"dropout_{i}", [default], default=default)
             for i, default in enumerate((BASELINE.dropout_1, BASELINE.dropout_2, BASELINE.dropout_3), 1)]
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Conv2D(32, (3, 3), activation="relu"),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Dropout(rates[0]),
            keras.layers.Conv2D(64, (3, 3), activation="relu"),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Dropout(rates[1]),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(rates[2]),
            keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name="cifar_cnn",
    )


@dataclass(frozen=True)
class ModelFunction:
    """A model function and what identifies it: its `--model` spec (None: the notebook's CNN) and source hash."""

    build: Callable[..., keras.Model]
    spec: str | None = None
    sha1: str | None = None

    @property
    def identity(self) -> dict[str, str] | None:
        """What config.json and the report's saved runs record; None for the notebook's CNN."""
        return None if self.spec is None else {"spec": self.spec, "sha1": self.sha1}

    @property
    def name(self) -> str:
        return self.spec or "the notebook's CNN"


NOTEBOOK_CNN = ModelFunction(notebook_cnn)


def load_model_function(identity: dict[str, str] | None) -> ModelFunction:
    """Import the function `config.model_identity` describes (None: the notebook's CNN).

    StudyError (one line naming the function) when it cannot be imported or is not a function, or
    when its source changed since `identity` was taken.
    """
    if identity is None:
        return NOTEBOOK_CNN
    spec = identity["spec"]
    where, _, name = spec.rpartition(":")
    try:
        module = _import_file(Path(where)) if where.endswith(".py") else importlib.import_module(where)
    except Exception as e:  # the user's code: any error while importing it is theirs to see, in one line
        raise StudyError(f"--model {spec}: cannot import {where} ({type(e).__name__}: {e})") from None
    build = getattr(module, name, None)
    if not callable(build):
        raise StudyError(f"--model {spec}: {where} has no function {name}")
    if model_identity(spec) != identity:
        raise StudyError(f"--model {spec}: its source changed while it was being loaded")
    return ModelFunction(build, spec, identity["sha1"])


def _import_file(path: Path):
    name = f"study_user_model_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@keras.saving.register_keras_serializable(package="study")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Sparse categorical cross-entropy with label smoothing, which Keras 3's sparse loss lacks.

    Integer labels become one-hot inside the loss, so the data pipeline stays as it is.
    """

    def __init__(self, label_smoothing: float, num_classes: int, name: str = "smoothed_sparse_crossentropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing, self.num_classes = float(label_smoothing), int(num_classes)

    def call(self, y_true, y_pred):
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        one_hot = keras.ops.one_hot(labels, self.num_classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "num_classes": self.num_classes}


def make_loss(label_smoothing: float, num_classes: int) -> str | keras.losses.Loss:
    """The notebook's loss, smoothed when asked."""
    if not label_smoothing:
        return "sparse_categorical_crossentropy"
    return SmoothedSparseCrossentropy(label_smoothing, num_classes)


def make_optimizer(name: str, learning_rate: float, weight_decay: float = 0.0) -> keras.optimizers.Optimizer:
    """Keras's optimizer; `weight_decay` is its decoupled one (Adam with it is AdamW), None when 0: not applied."""
    return _OPTIMIZER_CLASSES[name](learning_rate=learning_rate, weight_decay=weight_decay or None)


def compile_model(model: keras.Model, optimizer: str, learning_rate: float, *, weight_decay: float = 0.0,
                  label_smoothing: float = 0.0) -> keras.Model:
    """Compiled as in the notebook: sparse categorical cross-entropy (smoothed when asked), accuracy."""
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate, weight_decay),
        loss=make_loss(label_smoothing, model.output_shape[-1]),
        metrics=["accuracy"],
    )
    return model


def compile_with(model: keras.Model, values: dict[str, Any]) -> keras.Model:
    """`compile_model` with a configuration's hyperparameters: its optimizer, learning rate, weight decay and
    label smoothing (the notebook's where it names none)."""
    how = recipe.recipe(values)
    return compile_model(model, values["optimizer"], values["learning_rate"], weight_decay=how.weight_decay,
                         label_smoothing=how.label_smoothing)


def fixed(values: dict[str, Any]) -> keras_tuner.HyperParameters:
    """HyperParameters holding these values: a model function then builds exactly that configuration."""
    hp = keras_tuner.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


def build_uncompiled(input_shape: tuple[int, ...], num_classes: int, hyperparameters: dict[str, Any] | None = None,
                     model: ModelFunction = NOTEBOOK_CNN, seed: int | None = None) -> keras.Model:
    """`model` built with `hyperparameters` (the others take their defaults), not compiled: what a model file
    holds, loadable without `study` (a smoothed loss is study's own class).

    `seed`: every layer's initial weights from it and the layer's name (`study.seeding`); None: Keras's own draws.
    """
    values = {"optimizer": BASELINE.optimizer, "learning_rate": BASELINE.learning_rate, **(hyperparameters or {})}
    if seed is None:
        return model.build(fixed(values), tuple(input_shape), num_classes)
    return seeding.build_seeded(lambda: model.build(fixed(values), tuple(input_shape), num_classes), seed,
                                tuple(input_shape))


def build_model(input_shape: tuple[int, ...], num_classes: int, hyperparameters: dict[str, Any] | None = None,
                model: ModelFunction = NOTEBOOK_CNN, seed: int | None = None) -> keras.Model:
    """`model` built with `hyperparameters` (the others take their defaults) and compiled with their optimizer."""
    values = {"optimizer": BASELINE.optimizer, "learning_rate": BASELINE.learning_rate, **(hyperparameters or {})}
    return compile_with(build_uncompiled(input_shape, num_classes, values, model, seed), values)


def default_hyperparameters(model: ModelFunction, input_shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
    """The model's baseline: study's optimizer and learning rate (the notebook's) and the model's own defaults."""
    if model is NOTEBOOK_CNN:
        return BASELINE.hyperparameters()
    hp = fixed({"optimizer": BASELINE.optimizer, "learning_rate": BASELINE.learning_rate})
    check_model(model, hp, input_shape, num_classes)
    return dict(hp.values)


def check_model(model: ModelFunction, hp: keras_tuner.HyperParameters, input_shape: tuple[int, ...],
                num_classes: int) -> keras.Model:
    """Build once and check that the model fits the data; StudyError (one line naming the function) if not."""
    try:
        built = model.build(hp, tuple(input_shape), num_classes)
    except Exception as e:  # the user's code
        raise StudyError(f"--model {model.name}: building the model failed ({type(e).__name__}: {e})") from None
    if not isinstance(built, keras.Model):
        raise StudyError(f"--model {model.name}: returned {type(built).__name__}, not a keras.Model")
    inputs, outputs = tuple(built.input_shape[1:]), tuple(built.output_shape[1:])
    if inputs != tuple(input_shape):
        raise StudyError(f"--model {model.name}: the model takes inputs of shape {inputs}, the data's images are "
                         f"{tuple(input_shape)}")
    if outputs != (num_classes,):
        raise StudyError(f"--model {model.name}: the model outputs shape {outputs}, the data has {num_classes} "
                         "classes (a softmax over them is expected)")
    return built


def check_values(model: ModelFunction, values: dict[str, Any], input_shape: tuple[int, ...], num_classes: int,
                 flag: str = "--baseline") -> None:
    """StudyError (one line) for a name `model` does not declare, or a value outside its hp.Int/hp.Float range or
    hp.Choice list; study's own names (optimizer, learning rate, training) are checked by `config.validate_values`."""
    from study.config import TRAINING_HYPERPARAMETERS
    from study.values import validate_values

    hp = fixed({"optimizer": BASELINE.optimizer, "learning_rate": BASELINE.learning_rate})
    check_model(model, hp, input_shape, num_classes)
    declared = {p.name: p for p in hp.space if p.name not in ("optimizer", "learning_rate")}
    validate_values(values, ["optimizer", "learning_rate", *TRAINING_HYPERPARAMETERS, *declared], flag)
    for name, value in values.items():
        p = declared.get(name)
        if p is None or name in TRAINING_HYPERPARAMETERS:
            continue
        if isinstance(p, keras_tuner.engine.hyperparameters.Boolean) and not isinstance(value, bool):
            raise StudyError(f"{flag}: {name} of {model.name} is true or false, got {value!r}")
        choices = getattr(p, "values", None)
        if choices is not None and value not in choices:
            raise StudyError(f"{flag}: {name} of {model.name} is one of {list(choices)}, got {value!r}")
        low, high = getattr(p, "min_value", None), getattr(p, "max_value", None)
        if low is not None and not low <= value <= high:
            raise StudyError(f"{flag}: {name} of {model.name} is from {low} to {high}, got {value!r}")


def as_model_function(model) -> ModelFunction:
    """`model=` of the Python API as a ModelFunction: None (the notebook's CNN), "MODULE:FUNCTION", a function
    `build(hp, input_shape, num_classes)`, or a `keras_tuner.HyperModel` (its `build(hp)`).

    Identity: a function importable from a module file is named as `--model` names it (module and the file's
    sha1), so the command and Python resume each other's projects; one defined in a notebook or `python -` by its
    module, its name and a hash of its source (of its compiled code where no source can be read).
    """
    if model is None:
        return NOTEBOOK_CNN
    if isinstance(model, ModelFunction):
        return model
    if isinstance(model, str):
        return load_model_function(model_identity(model))
    if isinstance(model, keras_tuner.HyperModel):
        hypermodel = model
        spec, sha1 = _identity(type(hypermodel), "build")
        return ModelFunction(lambda hp, input_shape, num_classes: hypermodel.build(hp), spec, sha1)
    if callable(model):
        spec, sha1 = _identity(model, getattr(model, "__qualname__", type(model).__name__))
        return ModelFunction(model, spec, sha1)
    raise StudyError(f"model= takes a function build(hp, input_shape, num_classes), a keras_tuner.HyperModel or "
                     f"'MODULE:FUNCTION', got {type(model).__name__}")


def _identity(obj, name: str) -> tuple[str, str]:
    import inspect
    import marshal

    module = getattr(obj, "__module__", None) or "__main__"
    qualname = getattr(obj, "__qualname__", name)
    spec = f"{module}:{qualname}"
    if module != "__main__" and "." not in qualname and qualname.isidentifier():
        try:
            identity = model_identity(spec)
            if identity is not None:
                return identity["spec"], identity["sha1"]
        except StudyError:
            pass  # a module without a file: hashed by its source below
    try:
        text = inspect.getsource(obj).encode()
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None) or getattr(getattr(obj, "build", None), "__code__", None)
        if code is None:
            raise StudyError(f"model {spec}: neither its source nor its code can be read to identify it") from None
        text = marshal.dumps(code)
    return spec, hashlib.sha1(text).hexdigest()
