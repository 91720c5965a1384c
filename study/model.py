"""The notebook's CNN as a plain builder, and the training and evaluation that every command shares."""
from __future__ import annotations

import keras
import numpy as np

from study.config import BASELINE, OPTIMIZERS
from study.data import Batches

_OPTIMIZER_CLASSES = {
    "adam": keras.optimizers.Adam,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
}
assert tuple(_OPTIMIZER_CLASSES) == OPTIMIZERS


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    return _OPTIMIZER_CLASSES[name](learning_rate=learning_rate)


def build_model(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    optimizer: str = BASELINE.optimizer,
    learning_rate: float = BASELINE.learning_rate,
    dropout_1: float = BASELINE.dropout_1,
    dropout_2: float = BASELINE.dropout_2,
    dropout_3: float = BASELINE.dropout_3,
) -> keras.Model:
    """Conv32-Pool-Drop, Conv64-Pool-Drop, Dense128-Drop, Dense softmax; compiled as in the notebook."""
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Conv2D(32, (3, 3), activation="relu"),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Dropout(dropout_1),
            keras.layers.Conv2D(64, (3, 3), activation="relu"),
            keras.layers.MaxPooling2D((2, 2)),
            keras.layers.Dropout(dropout_2),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(dropout_3),
            keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name="cifar_cnn",
    )
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def fit(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    validation_data: tuple[np.ndarray, np.ndarray] | None = None,
    epochs: int = BASELINE.epochs,
    initial_epoch: int = 0,
    batch_size: int = BASELINE.batch_size,
    seed: int = 0,
    callbacks: list | None = None,
    verbose: int | str = 2,
) -> keras.callbacks.History:
    """Train on uint8 images; the data order depends only on `seed`, so runs can be compared fairly."""
    val = None
    if validation_data is not None:
        val = Batches(*validation_data, batch_size=max(batch_size, 256))
    return model.fit(
        Batches(x, y, batch_size, shuffle=True, seed=seed),
        validation_data=val,
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=verbose,
    )


def predict_proba(model: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities for uint8 images."""
    return model.predict(Batches(x, np.zeros(len(x), np.int32), batch_size), verbose=0)
