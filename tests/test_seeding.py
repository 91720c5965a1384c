"""Runs of one seed start alike: every layer's initial weights and random stream come from the seed and its name."""
from __future__ import annotations

import keras
import keras_tuner
import numpy as np

from study import retrain, seeding
from study.hypermodel import StudyHyperModel
from study.model import ModelFunction


def own_model(hp, input_shape, num_classes):
    """A user's model: a Dropout whose rate may be 0 before every weighted layer but the first."""
    rate = hp.Choice("rate", [0.0, 0.3])
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.Dropout(rate)(keras.layers.Flatten()(x))
    x = keras.layers.Dense(8, activation="relu")(x)
    x = keras.layers.BatchNormalization()(keras.layers.Dropout(rate)(x))
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))


def _weights(model) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.get_weights()]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_models_own_dropout_of_0_changes_no_initial_weight_and_nothing_built_before_does():
    model = ModelFunction(own_model, "tests.test_seeding:own_model", "x")
    hp = {"optimizer": "adam", "learning_rate": 1e-3}
    zero = _weights(retrain.initial_model((8, 8, 3), 3, {**hp, "rate": 0.0}, 4, model))
    keras.layers.Dense(3)  # more layers in the session: automatic names go on from here
    some = _weights(retrain.initial_model((8, 8, 3), 3, {**hp, "rate": 0.3}, 4, model))
    assert _same(zero, some)
    assert not _same(zero, _weights(retrain.initial_model((8, 8, 3), 3, {**hp, "rate": 0.0}, 5, model)))


def test_every_trial_of_a_search_starts_alike_whatever_its_dropout_rates():
    hypermodel = StudyHyperModel((12, 12, 3), 3, seed=7)
    built = []
    for rates in ((0.2, 0.3, 0.4), (0.0, 0.3, 0.0)):
        hp = keras_tuner.HyperParameters()
        for i, rate in enumerate(rates, 1):
            hp.Fixed(f"dropout_{i}", rate)
        built.append(_weights(hypermodel.build(hp)))
    assert _same(*built)


def test_dropout_streams_restart_from_the_seed_and_the_layers_name():
    def two_dropouts(first):
        return keras.Sequential([keras.Input((6,)), keras.layers.Dropout(first), keras.layers.Dense(4),
                                 keras.layers.Dropout(0.5)])

    x = np.ones((64, 6), np.float32)
    masks = []
    for first in (0.0, 0.2):
        model = seeding.build_seeded(lambda: two_dropouts(first), 3)
        last = model.layers[-1]
        masks.append(np.asarray(last(np.ones((64, 4), np.float32), training=True)) == 0)
        assert model(x).shape == (64, 4)
    # The second Dropout drops the same units whether or not a Dropout of rate 0 came before it.
    np.testing.assert_array_equal(masks[0], masks[1])
    assert seeding.derived_seed(3, "dropout_1", "stream") != seeding.derived_seed(4, "dropout_1", "stream")
