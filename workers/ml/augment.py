"""ImageDataGenerator's options rebuilt from Keras 3 layers (docs/decisions.md, "Keras 3 augmentation units").

Order follows ImageDataGenerator: random geometry, channel shift, flips (random, training
only), then the standardisation it applies to every image, training or not: rescale,
samplewise, featurewise. Unit conversions:

- rotation_range (degrees) -> RandomRotation(factor = degrees / 360).
- shear_range (degrees) -> RandomShear(x_factor = tan(angle)): Keras takes a fraction of
  the image, ImageDataGenerator an angle. Keras also flips the sign at random, matching
  ImageDataGenerator's symmetric [-angle, angle].
- zoom_range z: ImageDataGenerator samples a coordinate scale in [1-z, 1+z] (scale > 1
  shows more of the image, i.e. zooms out); RandomZoom's factor f scales by 1+f, where a
  positive f zooms out too, so f = scale - 1. Height and width are sampled independently,
  as in ImageDataGenerator.
- fill_mode defaults to "nearest" like ImageDataGenerator (Keras layers default to
  "reflect"); cval is the fill value for "constant".

Rescale and standardisation are only allowed in scratch mode (config.py): a pretrained
backbone's own preprocessing must see raw 0-255 pixels.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from workers.ml.config import AugmentationConfig
from workers.ml.layers import ChannelShift, FeaturewiseStandardize, SamplewiseStandardize


def build_random_augmentation(cfg: AugmentationConfig, *, seed: int = 0) -> keras.Sequential | None:
    """The random transforms of ``cfg`` (training only), or None when there are none.

    They wrap the model during training and are never part of the saved inference model:
    serving must not depend on layers it does not use (Keras 3.15's RandomShear, for one,
    does not load back from a saved file; docs/decisions.md, "What a saved model holds").
    """
    fill = {"fill_mode": cfg.fill_mode, "fill_value": cfg.cval}
    layers = []
    if cfg.rotation_range:
        layers.append(keras.layers.RandomRotation(cfg.rotation_range / 360.0, seed=seed + 1, name="rotation", **fill))
    if cfg.width_shift_range or cfg.height_shift_range:
        layers.append(
            keras.layers.RandomTranslation(
                cfg.height_shift_range, cfg.width_shift_range, seed=seed + 2, name="shift", **fill
            )
        )
    if cfg.shear_range:
        shear = math.tan(math.radians(cfg.shear_range))
        layers.append(keras.layers.RandomShear(x_factor=shear, y_factor=0.0, seed=seed + 3, name="shear", **fill))
    lo, hi = cfg.zoom_bounds
    if (lo, hi) != (1.0, 1.0):
        factor = (lo - 1.0, hi - 1.0)
        layers.append(keras.layers.RandomZoom(factor, width_factor=factor, seed=seed + 4, name="zoom", **fill))
    if cfg.channel_shift_range:
        layers.append(ChannelShift(cfg.channel_shift_range, seed=seed + 5, name="channel_shift"))
    if cfg.horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed + 6, name="hflip"))
    if cfg.vertical_flip:
        layers.append(keras.layers.RandomFlip("vertical", seed=seed + 7, name="vflip"))
    return keras.Sequential(layers, name="augmentation") if layers else None


def build_standardization(
    cfg: AugmentationConfig, train_images=None, *, default_rescale: float | None = None
) -> keras.Sequential | None:
    """Rescale and samplewise/featurewise standardisation (always on, saved with the model),
    or None when there is none.

    ``train_images`` (an iterable of image batches, e.g. a tf.data.Dataset without labels)
    is required when a featurewise option is on: the per-channel mean/std are fitted on it
    after the earlier standardisation steps and saved as layer weights. ``default_rescale``
    applies when ``cfg.rescale`` is None (scratch mode's 1/255).
    """
    standardize = []
    rescale = cfg.rescale if cfg.rescale is not None else default_rescale
    if rescale is not None:
        standardize.append(keras.layers.Rescaling(rescale, name="rescale"))
    if cfg.samplewise_center or cfg.samplewise_std_normalization:
        standardize.append(
            SamplewiseStandardize(cfg.samplewise_center, cfg.samplewise_std_normalization, name="samplewise")
        )
    if cfg.featurewise_center or cfg.featurewise_std_normalization:
        if train_images is None:
            raise ValueError("featurewise options need train_images to fit their statistics")
        featurewise = FeaturewiseStandardize(
            cfg.featurewise_center, cfg.featurewise_std_normalization, name="featurewise"
        )
        mean, std = _channel_statistics(train_images, standardize)
        featurewise.set_statistics(mean, std)
        standardize.append(featurewise)
    return keras.Sequential(standardize, name="standardization") if standardize else None


def build_augmentation(
    cfg: AugmentationConfig, train_images=None, *, seed: int = 0, default_rescale: float | None = None
) -> keras.Sequential:
    """Random transforms then standardisation, as ImageDataGenerator applies them (previews
    and tests; training keeps the two apart). Random layers act only with ``training=True``."""
    parts = [
        build_random_augmentation(cfg, seed=seed),
        build_standardization(cfg, train_images, default_rescale=default_rescale),
    ]
    layers = [layer for part in parts if part is not None for layer in part.layers]
    # An empty Sequential cannot be built; Identity keeps the model shape uniform.
    return keras.Sequential(layers or [keras.layers.Identity()], name="augmentation")


def _channel_statistics(images, preceding) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of ``images`` after the ``preceding`` layers (one pass)."""
    total = np.zeros(3, np.float64)
    total_sq = np.zeros(3, np.float64)
    count = 0
    for batch in images:
        x = batch[0] if isinstance(batch, tuple) else batch
        for layer in preceding:
            x = layer(x, training=False)
        x = np.asarray(x, np.float64).reshape(-1, 3)
        total += x.sum(axis=0)
        total_sq += (x * x).sum(axis=0)
        count += x.shape[0]
    if count == 0:
        raise ValueError("no training images to fit featurewise statistics on")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)
