"""Serving: load a saved model once, predict batches of raw images.

Decoding and resizing use the very ops of the training pipeline (``data.decode_and_resize``)
so predictions cannot drift from training. Only models this app wrote are loaded, after
their checksum is verified (DESIGN §7).
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import workers.ml.layers  # noqa: F401  registers the custom layers before any load
from workers.ml.data import decode_and_resize
from workers.ml.errors import MLError
from workers.ml.models import probabilities


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_verified_model(model_dir: Path, expected_sha256: str | None) -> keras.Model:
    """Load ``model_dir/model.keras`` with safe_mode after checking its sha256.

    A missing file or a checksum mismatch raises MLError before Keras reads a byte.
    """
    path = Path(model_dir) / "model.keras"
    if not path.is_file():
        raise MLError(f"no saved model at {path}")
    if expected_sha256 is not None and file_sha256(path) != expected_sha256:
        raise MLError(f"the model file {path} does not match its recorded checksum; refusing to load it")
    return keras.saving.load_model(path, compile=False, safe_mode=True)


def decode_image_bytes(data: bytes, image_size: tuple[int, int]) -> np.ndarray:
    """Encoded JPEG/PNG/GIF/BMP bytes -> float32 (H, W, 3) RGB 0-255, as in training.

    Undecodable bytes raise MLError.
    """
    try:
        return decode_and_resize(tf.constant(bytes(data)), tuple(image_size)).numpy()
    except (tf.errors.InvalidArgumentError, ValueError) as exc:
        raise MLError("the image could not be decoded (JPEG, PNG, GIF or BMP expected)") from exc


def prepare_array(image: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """An (H, W, 3) or (H, W) RGB array (0-255) -> float32 model input, resized as in training."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise MLError(f"an image array must be (height, width, 3), got shape {image.shape}")
    image = image[..., :3]
    if image.shape[:2] == tuple(image_size):
        return image.astype(np.float32)
    return tf.image.resize(image, image_size, method="bilinear").numpy()


class LoadedModel:
    """A verified, warmed model ready for concurrent ``predict`` calls."""

    def __init__(self, model: keras.Model, info: dict):
        self._model = model
        self.info = info
        self.class_names: list[str] = list(info["class_names"])
        self.image_size: tuple[int, int] = tuple(info["image_size"])
        # One call at a time: Keras models are not documented as thread-safe, and
        # batches are small enough that serialising them costs little.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_dir: Path, *, expected_sha256: str | None = None) -> LoadedModel:
        """Verify (``expected_sha256``, else model.json's checksum), load and warm."""
        model_dir = Path(model_dir)
        try:
            info = json.loads((model_dir / "model.json").read_text())
        except (OSError, ValueError) as exc:
            raise MLError(f"{model_dir} has no readable model.json") from exc
        expected = expected_sha256 if expected_sha256 is not None else info.get("sha256")
        loaded = cls(load_verified_model(model_dir, expected), info)
        # The first call builds the graph; do it now rather than in a user's request.
        loaded._run(np.zeros((1, *loaded.image_size, 3), np.float32))
        return loaded

    def _run(self, batch: np.ndarray) -> np.ndarray:
        # model(x, training=False), never model.predict: predict retraces per call and
        # ran ~30x slower from several threads (DESIGN §7).
        with self._lock:
            return probabilities(np.asarray(self._model(batch, training=False)))

    def predict(self, images: list) -> np.ndarray:
        """Probabilities (N, n_classes) for raw images (encoded bytes or RGB arrays),
        in input order, columns in ``class_names`` order."""
        if not images:
            return np.zeros((0, len(self.class_names)), np.float32)
        batch = np.stack(
            [
                decode_image_bytes(im, self.image_size)
                if isinstance(im, (bytes, bytearray))
                else prepare_array(im, self.image_size)
                for im in images
            ]
        )
        return self._run(batch)
