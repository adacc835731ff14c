"""Model builders: classifier head, full transfer model, the blog's small convnet."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from workers.ml.config import ExperimentConfig, HeadConfig
from workers.ml.layers import FeaturewiseStandardize


def is_binary(n_classes: int) -> bool:
    """Two classes use one sigmoid unit; more use softmax."""
    return n_classes == 2


def _output_layer(n_classes: int) -> keras.layers.Dense:
    if is_binary(n_classes):
        return keras.layers.Dense(1, activation="sigmoid", name="predictions")
    return keras.layers.Dense(n_classes, activation="softmax", name="predictions")


def pool_features(features: np.ndarray, pooling: str, rows: int = 1024) -> np.ndarray:
    """What the head's first layer does to base outputs, in numpy (for adapting). Flatten keeps a
    view (of a memory-mapped array too); avg pooling reads ``rows`` rows at a time."""
    if pooling == "avg":
        return np.concatenate([features[i : i + rows].mean(axis=(1, 2)) for i in range(0, len(features), rows)])
    return features.reshape(len(features), -1)


def feature_statistics(pooled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std, the std floored at a tenth of the average std.

    Without the floor a feature that is always 0 on the training set (a dead ReLU) gets
    divided by ~0; once fine-tuning wakes it up the head sees huge values and diverges
    to NaN (seen here with Keras' Normalization layer, which floors at 1e-7). Summed a
    block of rows at a time, so that memory-mapped features are never loaded whole.
    """
    mean, std = column_statistics(pooled)
    floor = 0.1 * float(std.mean()) if std.mean() > 0 else 1.0
    return mean.astype(np.float32), np.maximum(std, floor).astype(np.float32)


def column_statistics(values: np.ndarray, rows: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) std of each column of a 2-D array, in float64, ``rows`` rows at a time."""
    n = max(len(values), 1)
    mean = sum((values[i : i + rows].sum(axis=0, dtype=np.float64) for i in range(0, len(values), rows)), 0.0) / n
    squares = sum(
        (np.square(values[i : i + rows].astype(np.float64) - mean).sum(axis=0) for i in range(0, len(values), rows)),
        0.0,
    )
    return np.asarray(mean, np.float64), np.sqrt(np.asarray(squares, np.float64) / n)


def build_head(
    feature_shape: tuple, n_classes: int, head: HeadConfig, train_features: np.ndarray | None = None
) -> keras.Model:
    """Pooling -> [Normalization] -> Dense(units, relu) -> Dropout -> output, named "head".

    With ``head.normalize`` features are standardised with statistics of ``train_features``:
    pretrained VGG16 activations are large and heavy-tailed and the blog's head trains
    badly on them raw (docs/decisions.md, "A standardised head").
    """
    inputs = keras.Input(shape=feature_shape, name="features")
    if head.pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="pool")(inputs)
    else:
        x = keras.layers.Flatten(name="pool")(inputs)
    if head.normalize:
        if train_features is None:
            raise ValueError("a normalising head needs train_features to fit on")
        norm = FeaturewiseStandardize(True, True, channels=int(x.shape[-1]), name="feature_norm")
        norm.set_statistics(*feature_statistics(pool_features(train_features, head.pooling)))
        x = norm(x)
    x = keras.layers.Dense(head.units, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(head.dropout, name="dropout")(x)
    return keras.Model(inputs, _output_layer(n_classes)(x), name="head")


def build_transfer_model(image_size: tuple[int, int], preprocess, base, head) -> keras.Model:
    """Raw RGB 0-255 image -> preprocess -> base -> head: the saved inference model.

    The base is always called with ``training=False`` so its BatchNorm layers stay in
    inference mode even when blocks are unfrozen for fine-tuning.
    """
    inputs = keras.Input(shape=(*image_size, 3), name="image")
    x = preprocess(inputs)
    x = base(x, training=False)
    return keras.Model(inputs, head(x), name="transfer_model")


def build_scratch_model(image_size: tuple[int, int], n_classes: int, standardization=None) -> keras.Model:
    """The blog's small convnet: 3 x (Conv3x3 -> ReLU -> MaxPool) 32/32/64, Dense(64),
    Dropout(0.5), output. ``standardization`` (the 1/255 rescale and friends) comes first."""
    inputs = keras.Input(shape=(*image_size, 3), name="image")
    x = standardization(inputs) if standardization is not None else inputs
    for i, filters in enumerate((32, 32, 64), start=1):
        x = keras.layers.Conv2D(filters, 3, activation="relu", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(64, activation="relu", name="dense")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    return keras.Model(inputs, _output_layer(n_classes)(x), name="scratch_model")


def with_augmentation(model: keras.Model, augmentation) -> keras.Model:
    """``model`` behind the training-only random ``augmentation`` (shared weights), or
    ``model`` itself when there is none. Train this one; save ``model``."""
    if augmentation is None:
        return model
    inputs = keras.Input(shape=model.input_shape[1:], name="image")
    return keras.Model(inputs, model(augmentation(inputs)), name=f"{model.name}_training")


class FusedRMSprop(keras.optimizers.RMSprop):
    """Keras's RMSprop, with each variable's update in TensorFlow's one fused kernel (ResourceApplyRMSProp).

    Keras computes the update as five separate element-wise operations, each a pass over the weights:
    on a bottleneck head (2.1 M weights in its first Dense layer, a few milliseconds of arithmetic per
    step) those passes took most of each step. The kernel computes the same formula in one pass: a head
    trained 20% faster here, its weights within 2e-8 of Keras's after 380 steps (docs/decisions.md,
    "RMSprop in one kernel"). Centered RMSprop and sparse gradients keep Keras's own update.

    Never part of a saved model: the modes compile a training wrapper and save the uncompiled model
    inside it, so files that serve or are exported name no optimizer.
    """

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # The kernel's momentum slot, updated even at momentum 0 (it then holds the last increment).
        self._fused_momentums = self._momentums or self.add_optimizer_variables(var_list, "fused_momentum")

    def update_step(self, gradient, variable, learning_rate):
        if self.centered or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        tf.raw_ops.ResourceApplyRMSProp(
            var=variable.handle,
            ms=self._velocities[index].handle,
            mom=self._fused_momentums[index].handle,
            lr=tf.cast(learning_rate, dtype),
            rho=tf.cast(self.rho, dtype),
            momentum=tf.cast(self.momentum, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )
        return None


def compile_model(model: keras.Model, cfg: ExperimentConfig, n_classes: int, *, steps_per_execution: int = 1) -> None:
    """Compile with the config's optimizer; loss chosen from the class count.

    ``steps_per_execution`` > 1 runs that many batches per compiled call (batch callbacks
    then fire once per call): worth it when steps are tiny, as for a bottleneck head.
    """
    if cfg.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(cfg.learning_rate, momentum=cfg.momentum)
    elif cfg.optimizer == "adam":
        optimizer = keras.optimizers.Adam(cfg.learning_rate)
    else:
        optimizer = FusedRMSprop(cfg.learning_rate)
    loss = "binary_crossentropy" if is_binary(n_classes) else "sparse_categorical_crossentropy"
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], steps_per_execution=steps_per_execution)


def probabilities(outputs: np.ndarray) -> np.ndarray:
    """Model outputs -> (N, n_classes) probabilities; a sigmoid column becomes [1-p, p]."""
    outputs = np.asarray(outputs, dtype=np.float32)
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        return np.concatenate([1.0 - outputs, outputs], axis=1)
    return outputs
