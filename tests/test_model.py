from __future__ import annotations

import keras
import keras_tuner
import numpy as np

from study.config import BASELINE, SearchSpace
from study.hypermodel import StudyHyperModel
from study.model import build_model
from study.training import fit, predict_proba

NOTEBOOK_LAYERS = [
    ("Conv2D", {"filters": 32, "kernel_size": (3, 3), "activation": "relu"}),
    ("MaxPooling2D", {"pool_size": (2, 2)}),
    ("Dropout", {"rate": 0.2}),
    ("Conv2D", {"filters": 64, "kernel_size": (3, 3), "activation": "relu"}),
    ("MaxPooling2D", {"pool_size": (2, 2)}),
    ("Dropout", {"rate": 0.3}),
    ("Flatten", {}),
    ("Dense", {"units": 128, "activation": "relu"}),
    ("Dropout", {"rate": 0.4}),
    ("Dense", {"units": 10, "activation": "softmax"}),
]


def _architecture(model):
    out = []
    for layer, (_, expected) in zip(model.layers, NOTEBOOK_LAYERS):
        config = layer.get_config()
        out.append((type(layer).__name__, {k: config[k] if not isinstance(config[k], list) else tuple(config[k])
                                           for k in expected}))
    return out


def test_baseline_is_the_notebook_cnn():
    model = build_model((32, 32, 3), 10)
    assert _architecture(model) == NOTEBOOK_LAYERS
    assert len(model.layers) == len(NOTEBOOK_LAYERS)
    assert model.count_params() == 315_722
    assert model.loss == "sparse_categorical_crossentropy"
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert np.isclose(float(model.optimizer.learning_rate), 1e-3)


def test_hypermodel_defaults_are_exactly_the_baseline():
    hypermodel = StudyHyperModel((32, 32, 3), 10)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert hp.values == BASELINE.hyperparameters()
    assert _architecture(model) == NOTEBOOK_LAYERS
    assert model.count_params() == 315_722
    assert type(model.optimizer) is keras.optimizers.Adam
    assert np.isclose(float(model.optimizer.learning_rate), BASELINE.learning_rate)
    assert hypermodel.epochs == 15 and hypermodel.batch_size == 64


def test_hypermodel_exposes_the_space_as_choices():
    space = SearchSpace(optimizers=("sgd", "rmsprop"), learning_rates=(0.01, 0.1), dropout_1=(0.0, 0.5))
    hypermodel = StudyHyperModel((16, 16, 1), 3, space=space)
    hp = keras_tuner.HyperParameters()
    hypermodel.build(hp)
    assert [p.name for p in hp.space] == ["optimizer", "learning_rate", "dropout_1", "dropout_2", "dropout_3"]
    assert list(hp.space[0].values) == ["sgd", "rmsprop"]
    assert hp.values["optimizer"] == "sgd"  # the baseline's adam is not in the list: first value
    hp.values.update(optimizer="rmsprop", learning_rate=0.1, dropout_1=0.5)
    model = hypermodel.build(hp)
    assert type(model.optimizer) is keras.optimizers.RMSprop
    assert np.isclose(float(model.optimizer.learning_rate), 0.1)
    assert model.layers[2].rate == 0.5
    assert model.output_shape == (None, 3)


def test_same_seed_same_initial_weights_and_training():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(80, 16, 16, 3), dtype=np.uint8)
    y = rng.integers(0, 4, size=80).astype(np.int32)
    (x, y), held_out = (x[:64], y[:64]), (x[64:], y[64:])  # validation on images it does not train on
    hypermodel = StudyHyperModel((16, 16, 3), 4, epochs=1, batch_size=16, seed=7)
    runs = []
    for _ in range(2):
        model = hypermodel.build(keras_tuner.HyperParameters())
        first = [w.copy() for w in model.get_weights()]
        history = hypermodel.fit(None, model, x, y, validation_data=held_out, verbose=0)
        runs.append((first, history.history["loss"][0], predict_proba(model, x[:5])))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert abs(runs[0][1] - runs[1][1]) < 1e-6
    np.testing.assert_allclose(runs[0][2], runs[1][2], atol=1e-6)
    assert runs[0][2].shape == (5, 4) and np.allclose(runs[0][2].sum(axis=1), 1, atol=1e-5)


def test_fit_learns_a_separable_problem():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=320).astype(np.int32)
    x = np.where(y[:, None, None, None] == 1, 200, 40).astype(np.uint8) + rng.integers(0, 30, (320, 16, 16, 3)).astype(np.uint8)
    keras.utils.set_random_seed(0)
    model = build_model((16, 16, 3), 2)
    # The last 64 images are held out: the validation accuracy is on images the model never trained on.
    history = fit(model, x[:256], y[:256], validation_data=(x[256:], y[256:]), epochs=3, batch_size=32, verbose=0)
    assert history.history["val_accuracy"][-1] > 0.9


def test_graphs_of_a_finished_model_are_freed():
    import gc

    from tensorflow.python.framework.func_graph import FuncGraph

    def train_once():
        keras.backend.clear_session()
        model = build_model((16, 16, 3), 3)
        rng = np.random.default_rng(0)
        fit(model, rng.integers(0, 256, (32, 16, 16, 3), dtype=np.uint8), rng.integers(0, 3, 32), epochs=1, verbose=0)
        del model
        keras.backend.clear_session()
        gc.collect()
        return sum(isinstance(o, FuncGraph) for o in gc.get_objects())

    first = train_once()
    # Without study.training._releasing_graphs each fit leaves its traced step (and ~40 graphs with it) behind.
    assert train_once() == first
    assert train_once() == first
