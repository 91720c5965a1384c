"""An example of your own model for `study`: a CNN whose width, batch normalisation and dropout are tuned.

    python -m study.search --model examples/wide_cnn.py:build --data-dir PATH
    python -m study.report --model examples/wide_cnn.py:build

`build(hp, input_shape, num_classes)` returns an uncompiled keras.Model. The hyperparameters it declares
join the search; `study` adds the optimizer and the learning rate, compiles and reports. Their
defaults make the model's baseline, which the report retrains and compares like the notebook's.
"""
import keras


def build(hp, input_shape, num_classes):
    width = hp.Int("width", 16, 64, step=16, default=32)  # filters of the first block; the second has twice
    batch_norm = hp.Boolean("batch_norm", default=False)
    dropout = hp.Choice("dropout", [0.0, 0.25, 0.5], default=0.25)

    inputs = keras.Input(shape=input_shape)
    x = inputs
    for filters in (width, 2 * width):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm)(x)
        if batch_norm:
            x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation("relu")(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="wide_cnn")
