"""The Keras Tuner HyperModel: the baseline CNN with optimizer, learning rate and dropouts exposed."""
from __future__ import annotations

import math

import keras
import keras_tuner

from study import model as model_lib
from study.config import BASELINE, SearchSpace


class CNNHyperModel(keras_tuner.HyperModel):
    """`build` only picks values and calls `build_model`; `build(HyperParameters())` is the baseline.

    Every trial starts from the same initial weights and sees the same data order (both from
    `seed`), so trials differ only in their hyperparameters.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        *,
        space: SearchSpace | None = None,
        epochs: int = BASELINE.epochs,
        batch_size: int = BASELINE.batch_size,
        seed: int = 1,
        early_stopping: int | None = None,
    ):
        super().__init__(name="cnn")
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.space = space or SearchSpace()
        self.epochs, self.batch_size, self.seed = epochs, batch_size, seed
        self.early_stopping = early_stopping

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        values = {}
        for name, choices in self.space.values().items():
            default = BASELINE.hyperparameters()[name]
            values[name] = hp.Choice(name, list(choices), default=default if default in choices else choices[0])
        keras.utils.set_random_seed(self.seed)
        return model_lib.build_model(self.input_shape, self.num_classes, **values)

    def fit(self, hp, model, x, y, validation_data=None, callbacks=None, verbose=2, **kwargs):
        callbacks = [*(callbacks or []), keras.callbacks.TerminateOnNaN()]
        if self.early_stopping:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=self.early_stopping, restore_best_weights=True
                )
            )
        # Hyperband passes its own epochs and initial_epoch for each round.
        history = model_lib.fit(
            model, x, y,
            validation_data=validation_data, epochs=kwargs.pop("epochs", self.epochs),
            initial_epoch=kwargs.pop("initial_epoch", 0), batch_size=self.batch_size,
            seed=self.seed, callbacks=callbacks, verbose=verbose,
        )
        losses = history.history.get("loss", [])
        if any(math.isnan(v) or math.isinf(v) for v in losses):
            # Otherwise the trial would count as complete, scored by the accuracy of NaN outputs.
            raise keras_tuner.errors.FailedTrialError(
                f"training loss became {losses[-1]} in epoch {len(losses)}; the learning rate is probably too high"
            )
        return history
