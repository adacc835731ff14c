"""Serving: load a saved model once, predict batches of images.

Images are decoded by ``images.decode_image``, the function training and evaluation use, so
a file gets the same array, and so the same probabilities, in evaluation and in serving.
Only models this app wrote are loaded, after their checksum is verified
(docs/decisions.md, "Loading models safely").
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import keras
import numpy as np

import workers.ml.layers  # noqa: F401  registers the custom layers before any load
from workers.ml.errors import MLError
from workers.ml.hashing import file_sha256
from workers.ml.images import array_to_model_input, decode_image
from workers.ml.models import probabilities


def load_verified_model(model_dir: Path, expected_sha256: str | None) -> keras.Model:
    """Load ``model_dir/model.keras`` with safe_mode after checking its sha256.

    A missing file, a checksum mismatch or a file Keras cannot rebuild raises MLError (whose
    message names no server path: it reaches users).
    """
    path = Path(model_dir) / "model.keras"
    if not path.is_file():
        raise MLError("the saved model file is missing")
    if expected_sha256 is not None and file_sha256(path) != expected_sha256:
        raise MLError("the saved model file does not match its recorded checksum; refusing to load it")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises TypeError, ValueError, KeyError... for one cause
        # Keras names the file it failed on; the message reaches users, who need its name only.
        detail = str(exc).replace(str(path), path.name)
        raise MLError(f"Keras could not load the saved model back ({type(exc).__name__}: {detail})") from exc


def model_inputs(images: list, image_size: tuple[int, int], *, max_pixels: int = 1 << 31) -> np.ndarray:
    """Encoded bytes or RGB arrays -> the uint8 (N, H, W, 3) batch the model sees.

    Bytes go through ``images.decode_image``, exactly as in training and evaluation.
    """
    size = tuple(image_size)
    return np.stack(
        [
            decode_image(im, size, max_pixels=max_pixels)
            if isinstance(im, (bytes, bytearray, memoryview))
            else (np.asarray(im, np.uint8) if np.shape(im) == (*size, 3) else array_to_model_input(im, size))
            for im in images
        ]
    )


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
        self._explainer = None  # a GradCam, built on the first explain

    @property
    def keras_model(self) -> keras.Model:
        """The Keras model itself, for analyses that run it in parts (workers.ml.datamap)."""
        return self._model

    @classmethod
    def load(cls, model_dir: Path, *, expected_sha256: str | None = None) -> LoadedModel:
        """Verify (``expected_sha256``, else model.json's checksum), load and warm."""
        model_dir = Path(model_dir)
        try:
            info = json.loads((model_dir / "model.json").read_text())
        except (OSError, ValueError) as exc:
            raise MLError("the model has no readable model.json") from exc
        expected = expected_sha256 if expected_sha256 is not None else info.get("sha256")
        loaded = cls(load_verified_model(model_dir, expected), info)
        # The first call builds the graph; do it now rather than in a user's request.
        loaded.run(np.zeros((1, *loaded.image_size, 3), np.uint8))
        return loaded

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for a uint8 (N, H, W, 3) batch already decoded by ``model_inputs``."""
        # model(x, training=False), never model.predict: predict retraces per call and ran
        # ~30x slower from several threads (docs/decisions.md, "Serving").
        batch = np.asarray(batch, np.float32)
        with self._lock:
            return probabilities(np.asarray(self._model(batch, training=False)))

    def predict(self, images: list) -> np.ndarray:
        """Probabilities (N, n_classes) for raw images (encoded bytes or RGB arrays),
        in input order, columns in ``class_names`` order."""
        if not images:
            return np.zeros((0, len(self.class_names)), np.float32)
        return self.run(model_inputs(images, self.image_size))

    def explain(self, batch: np.ndarray, class_indices: list[int] | None = None) -> list:
        """Grad-CAM explanations (workers.ml.gradcam) of a uint8 batch already decoded by ``model_inputs``,
        for ``class_indices`` or each image's top class. MLError when the model has no convolution."""
        from workers.ml.gradcam import GradCam

        with self._lock:
            if self._explainer is None:
                self._explainer = GradCam(self._model)
            return self._explainer.explain(np.asarray(batch, np.uint8), class_indices)
