"""The Keras Tuner HyperModel: a model function with the optimizer and the learning rate added to its space.

`build(HyperParameters())` is the model's baseline: for the notebook's CNN, the notebook's model.
"""
from __future__ import annotations

import math

import keras
import keras_tuner

from study import model as model_lib
from study import recipe, seeding, training
from study.config import BASELINE, SearchSpace
from study.model import NOTEBOOK_CNN, ModelFunction


class StudyHyperModel(keras_tuner.HyperModel):
    """`build` declares study's hyperparameters, calls the model function and compiles.

    Every trial starts from the same initial weights and sees the same data order (both from
    `seed`), so trials differ only in their hyperparameters.
    """

    def __init__(
        self,
        input_shape: tuple[int, int, int],
        num_classes: int,
        *,
        space: SearchSpace | None = None,
        model: ModelFunction = NOTEBOOK_CNN,
        epochs: int = BASELINE.epochs,
        batch_size: int = BASELINE.batch_size,
        seed: int = 1,
        early_stopping: int | None = None,
    ):
        super().__init__(name="cnn")
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.space, self.model = space or SearchSpace(), model
        self.epochs, self.batch_size, self.seed = epochs, batch_size, seed
        self.early_stopping = early_stopping

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        values = self.space.values()
        if self.model is not NOTEBOOK_CNN:  # --dropout1/2/3 are the notebook CNN's
            values = {k: v for k, v in values.items() if k in ("optimizer", "learning_rate")}
        defaults = {**BASELINE.hyperparameters(), **BASELINE.training(), "batch_size": self.batch_size}
        for name, choices in values.items():
            default = defaults[name]
            hp.Choice(name, list(choices), default=default if default in choices else choices[0])
        # Every layer's initial weights from the seed and its name: trials of one seed start alike whatever
        # their dropout rates (study.seeding).
        built = seeding.build_seeded(lambda: self.model.build(hp, self.input_shape, self.num_classes), self.seed,
                                     self.input_shape)
        # The training hyperparameters a model function declared are applied too (study.recipe).
        return model_lib.compile_with(built, hp.values)

    def fit(self, hp, model, x, y, validation_data=None, callbacks=None, verbose=2, **kwargs):
        callbacks = [*(callbacks or []), keras.callbacks.TerminateOnNaN()]
        if self.early_stopping:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=self.early_stopping, restore_best_weights=True
                )
            )
        how = recipe.recipe(hp.values if hp is not None else {}, self.batch_size)
        # Hyperband passes its own epochs and initial_epoch for each round; its rounds all follow one
        # schedule, over the search's epochs, so a round that continues another goes on along its curve.
        history = training.fit(
            model, x, y,
            validation_data=validation_data, epochs=kwargs.pop("epochs", self.epochs),
            initial_epoch=kwargs.pop("initial_epoch", 0), batch_size=how.batch_size,
            seed=self.seed, callbacks=callbacks, verbose=verbose,
            augmentation=how.augmentation, schedule=how.schedule, schedule_epochs=self.epochs,
        )
        losses = history.history.get("loss", [])
        if any(math.isnan(v) or math.isinf(v) for v in losses):
            # Otherwise the trial would count as complete, scored by the accuracy of NaN outputs.
            raise keras_tuner.errors.FailedTrialError(
                f"training loss became {losses[-1]} in epoch {len(losses)}; the learning rate is probably too high"
            )
        return history
