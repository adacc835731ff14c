"""Keras's side of the backbone registry (workers/ml/registry.py): constructors, weights, blocks."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import keras

from workers.ml.errors import ConfigError, WeightsError
from workers.ml.hashing import file_sha256
from workers.ml.layers import BackbonePreprocess
from workers.ml.registry import SPECS, BackboneSpec

_KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
_FACTORIES = {"vgg16": keras.applications.VGG16, "mobilenet_v2": keras.applications.MobileNetV2}


@dataclass(frozen=True)
class Backbone:
    """A registry entry with its Keras constructor."""

    spec: BackboneSpec
    factory: object  # keras.applications constructor

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def min_size(self) -> int:
        return self.spec.min_size

    @property
    def blocks(self) -> dict:
        return self.spec.blocks


BACKBONES = {name: Backbone(spec, _FACTORIES[name]) for name, spec in SPECS.items()}


def get_backbone(name: str) -> Backbone:
    """The registry entry for ``name``; ConfigError when unknown."""
    try:
        return BACKBONES[name]
    except KeyError:
        raise ConfigError("backbone", f"unknown backbone {name!r}") from None


def weights_file_name(backbone: str, image_size: tuple[int, int] = (224, 224)) -> str:
    """Keras's own file name for the no-top ImageNet weights of ``backbone``."""
    return SPECS[backbone].weights_file(image_size)


def _weights_url(backbone: str, fname: str) -> str:
    return f"{_KERAS_WEIGHTS_URL}{backbone}/{fname}"


def resolve_weights(
    backbone: str, weights: str, weights_dir: Path | None, image_size: tuple[int, int] = (224, 224)
) -> Path | None:
    """Path of the weights file to load, or None for random initialisation.

    "imagenet" uses ``weights_dir/<Keras's file name>`` when present, otherwise Keras's
    download cache (downloading if needed). A failed download raises WeightsError naming
    the file and TL_WEIGHTS_DIR.
    """
    if weights == "none":
        return None
    fname = weights_file_name(backbone, image_size)
    if weights_dir is not None and (Path(weights_dir) / fname).is_file():
        return Path(weights_dir) / fname
    cached = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / fname
    if cached.is_file():
        return cached
    # get_file has no timeout of its own; a stalled network would hang the worker.
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        path = keras.utils.get_file(fname, _weights_url(backbone, fname), cache_subdir="models")
    except Exception as exc:  # URLError, HTTPError, OSError, ...: all mean "not available"
        raise WeightsError(
            f"ImageNet weights for {backbone} are not available: downloading {fname} failed "
            f"({type(exc).__name__}). Download it and put it in TL_WEIGHTS_DIR "
            f"(currently {str(weights_dir) if weights_dir else 'unset'})."
        ) from exc
    finally:
        socket.setdefaulttimeout(old_timeout)
    return Path(path)


_hash_cache: dict = {}


def weights_identity(weights_path: Path | None, seed: int) -> str:
    """A string that changes whenever the base's initial weights would.

    Random initialisation depends on the seed, so "none" includes it; a file is
    identified by its content hash (memoised on path, size and mtime).
    """
    if weights_path is None:
        return f"none-seed{seed}"
    stat = weights_path.stat()
    memo_key = (str(weights_path), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _hash_cache:
        _hash_cache[memo_key] = "sha256-" + file_sha256(weights_path)
    return _hash_cache[memo_key]


def build_base(backbone: str, image_size: tuple[int, int], weights_path: Path | None, seed: int) -> keras.Model:
    """The convolutional base (include_top=False), weights loaded, named after ``backbone``.

    The global seed is reset first so that random initialisation ("none") is identical
    for every build with the same seed: cached features must match the saved base.
    """
    spec = get_backbone(backbone)
    keras.utils.set_random_seed(seed)
    kwargs = {
        "include_top": False,
        "input_shape": (*image_size, 3),
        "weights": str(weights_path) if weights_path else None,
        "name": backbone,
    }
    if backbone == "mobilenet_v2":
        kwargs["alpha"] = 1.0
    return spec.factory(**kwargs)


def build_preprocess(backbone: str) -> keras.layers.Layer:
    """The serializable layer doing ``backbone``'s preprocess_input inside the model."""
    return BackbonePreprocess(backbone, name="preprocess")


def set_trainable_blocks(base: keras.Model, backbone: str, blocks: tuple[str, ...]) -> list[str]:
    """Make layers of ``blocks`` trainable and every other base layer frozen.

    Returns the names of the trainable layers. BatchNorm layers stay in inference mode
    because the caller invokes the base with ``training=False``.
    """
    spec = get_backbone(backbone)
    prefixes = tuple(p for b in blocks for p in spec.blocks[b])
    base.trainable = True
    names = []
    for layer in base.layers:
        layer.trainable = bool(layer.weights) and layer.name.startswith(prefixes)
        if layer.trainable:
            names.append(layer.name)
    return names
