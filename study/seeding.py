"""Initial weights and dropout masks seeded per layer: from the run's seed and each layer's name.

Keras draws every unseeded initializer's seed, and every Dropout layer's, from one global stream, in
the order the layers are built; a Dropout of rate 0 draws none, so every layer built after it starts
from other weights than in a model whose rate is above 0, although the layers have the same shapes.
Here each weight's initializer is seeded from (run seed, layer name, weight name), and each layer's
random stream (Dropout's) from (run seed, layer name): arms whose layers have the same names and
shapes start from the same weights whatever their dropout rates, for the notebook's CNN and any
`--model`. Layer names are Keras's own, numbered as in a fresh session (`fresh_names`), so a model
gets the same names, and weights, whatever was built before it in the process.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
from collections import Counter
from collections.abc import Callable, Iterator

import keras
import numpy as np


def derived_seed(seed: int, *names: str) -> int:
    """A seed in [1, 2**31) that depends on `seed` and `names` only (not on Python's hash salt)."""
    text = "/".join([str(seed), *names]).encode()
    return 1 + int.from_bytes(hashlib.sha256(text).digest()[:8], "big") % (2**31 - 1)


@contextlib.contextmanager
def seeded_weights(seed: int) -> Iterator[None]:
    """Inside the block, every weight a layer adds draws from (seed, layer name, weight name).

    Wraps `keras.layers.Layer.add_weight`, the one door every Keras layer's weights come through; an
    initializer without a seed (constants: zeros, ones) is left as it is.
    """
    original = keras.layers.Layer.add_weight
    made: Counter = Counter()

    def add_weight(layer, *args, shape=None, initializer=None, dtype=None, name=None, **kwargs):
        if args:  # the legacy positional form: Keras's own handling, unseeded
            return original(layer, *args, shape=shape, initializer=initializer, dtype=dtype, name=name, **kwargs)
        made[(layer.name, name)] += 1
        chosen = _seeded(layer, initializer, dtype, derived_seed(seed, layer.name, str(name),
                                                                  str(made[(layer.name, name)])))
        return original(layer, shape=shape, initializer=chosen, dtype=dtype, name=name, **kwargs)

    keras.layers.Layer.add_weight = add_weight
    try:
        yield
    finally:
        keras.layers.Layer.add_weight = original


def _seeded(layer, initializer, dtype, seed: int):
    """`initializer` (or Keras's default for the weight's dtype) with `seed`, if it takes one."""
    if initializer is None:
        wanted = keras.backend.standardize_dtype(dtype) if dtype is not None else layer.variable_dtype
        initializer = "glorot_uniform" if "float" in wanted else "zeros"
    if isinstance(initializer, (str, dict)):
        initializer = keras.initializers.get(initializer)
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer  # a callable of the user's: theirs to seed
    config = initializer.get_config()
    if "seed" not in config:
        return initializer
    return initializer.__class__.from_config({**config, "seed": seed})


def seed_random_streams(model: keras.Model, seed: int) -> None:
    """Restart every layer's random stream (a Dropout's masks) from (seed, layer name)."""
    for layer in _layers(model):
        for value in vars(layer).values():
            if isinstance(value, keras.random.SeedGenerator):
                state = value.state
                start = np.array([derived_seed(seed, layer.name, "stream"), 0], dtype=state.dtype)
                state.assign(start)


def _layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer, nested ones too (a model used as a layer), each once."""
    found, stack = {}, list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop(0)
        if id(layer) not in found:
            found[id(layer)] = layer
            stack.extend(getattr(layer, "layers", []))
    return list(found.values())


@contextlib.contextmanager
def fresh_names() -> Iterator[None]:
    """Inside the block, Keras numbers automatic layer names as in a new session ("conv2d", "conv2d_1", ...).

    Afterwards the session's counters go on past both, so later names never repeat one given inside.
    (Keras keeps the counters in its global state; without it, names are left as Keras gives them.)
    """
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # another Keras layout: names as they come
        yield
        return
    key = "object_name_uids"
    before = global_state.get_global_attribute(key, default=collections.defaultdict(int), set_to_default=True)
    inside: collections.defaultdict = collections.defaultdict(int)
    global_state.set_global_attribute(key, inside)
    try:
        yield
    finally:
        for prefix, n in inside.items():
            before[prefix] = max(before[prefix], n)
        global_state.set_global_attribute(key, before)


def build_seeded(build: Callable[[], keras.Model], seed: int,
                 input_shape: tuple[int, ...] | None = None) -> keras.Model:
    """`build()` with every layer's weights and random stream seeded from `seed` and the layer's name.

    A model returned unbuilt (no `keras.Input`) is built here for `input_shape`, so that its weights are
    made inside the seeding too rather than at its first batch.
    """
    keras.utils.set_random_seed(seed)  # anything else the model function draws (its own NumPy, say)
    with fresh_names(), seeded_weights(seed):
        model = build()
        if isinstance(model, keras.Model) and not model.built and input_shape is not None:
            model.build((None, *input_shape))
    if isinstance(model, keras.Model):
        seed_random_streams(model, seed)
    return model
