"""Augmentation preview: a few training images as the random transforms of a config show them.

Used by the new-experiment form so that users see what their ImageDataGenerator options do
before they train. Standardisation options (rescale, featurewise and samplewise centring and
normalisation) are left out: they change the range of the values, not what the image shows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from workers.ml.augment import build_augmentation
from workers.ml.config import parse_augmentation
from workers.ml.data import STORED_MAX_PIXELS
from workers.ml.images import decode_file

_STANDARDISATION_OFF = {
    "rescale": None,
    "featurewise_center": False,
    "featurewise_std_normalization": False,
    "samplewise_center": False,
    "samplewise_std_normalization": False,
}


def augmentation_preview(
    *, image_paths: list[Path], augmentation: dict, image_size: tuple[int, int], copies: int = 3, seed: int = 0
) -> list[list[np.ndarray]]:
    """For each image: the resized original, then `copies` randomly augmented versions.

    Returns uint8 (H, W, 3) RGB arrays. Invalid options raise ConfigError naming the key, exactly
    as parse_config would (options are checked as in scratch mode, where all are allowed).
    """
    cfg = dataclasses.replace(parse_augmentation(augmentation, "scratch"), **_STANDARDISATION_OFF)
    layer = build_augmentation(cfg, seed=seed)
    originals = np.stack([decode_file(p, tuple(image_size), max_pixels=STORED_MAX_PIXELS) for p in image_paths]).astype(
        np.float32
    )
    variants = [np.asarray(layer(originals, training=True)) for _ in range(copies)]
    rows = []
    for i in range(len(image_paths)):
        row = [originals[i]] + [variant[i] for variant in variants]
        rows.append([np.clip(np.rint(image), 0, 255).astype(np.uint8) for image in row])
    return rows
