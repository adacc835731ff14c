"""The frozen base's arithmetic, chosen by measuring it on this worker (docs/decisions.md, "Precision by measurement").

bfloat16 nearly doubled VGG16's images/s on one CPU here and slowed it to 0.85x on another with the
same flags, and on one CPU it sped VGG16 up and slowed MobileNetV2 down: CPU flags do not predict
it. So ``auto`` times the base in each precision on a small batch of random pixels, once per host,
backbone, image size and weights, keeps the answer in a small JSON file, and takes the fastest
precision whose features stay within ``TOLERANCE`` of float32's, measured against how much the
features vary between images.

Only the training images' features are computed in the chosen precision. Validation and test
features, the head and the saved model stay float32, so that what the experiment page reports is
what the endpoint computes (docs/decisions.md, "One decoder").
"""

from __future__ import annotations

import json
import os
import platform
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from workers.ml.features import compiled

KERAS_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
# Largest error accepted: the norm of bfloat16's difference from float32's features over the norm of
# float32's features around their mean over the batch, i.e. against what tells the images apart (the
# plain relative error, 0.7% for VGG16 here, says little when features hardly vary: random weights).
# Random-weight VGG16 measured 7-10% by this yardstick, and a head trained on its bfloat16 features
# scored 0.84 against float32's 0.90 (benchmarks/README.md): such a base stays float32.
TOLERANCE = 5e-2
MEASURE_BATCH = 8
MEASURE_ROUNDS = 3


@dataclass
class Choice:
    """Which precision a run extracts its training features in, and why."""

    requested: str  # auto | float32 | bfloat16
    used: str  # float32 | bfloat16
    # "asked": the config named it; "measured": timed now; "measured earlier": this host's stored
    # measurement; "cached features": features of this precision were stored already.
    source: str
    images_per_s: dict = field(default_factory=dict)  # precision -> images/s on the measuring batch
    relative_error: float | None = None  # bfloat16's features against float32's spread (TOLERANCE)
    tolerance: float = TOLERANCE

    def as_dict(self) -> dict:
        return asdict(self)


def host_id() -> str:
    """This machine as far as speed goes: name, CPU model, cores and TensorFlow's version."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}|{model}|{os.cpu_count()}|tf-{tf.__version__}"


def measurement_key(backbone: str, image_size: tuple[int, int], weights_identity: str) -> str:
    return f"{host_id()}|{backbone}|{image_size[0]}x{image_size[1]}|{weights_identity}"


def build_in(precision: str, build: Callable[[], keras.Model]) -> keras.Model:
    """``build()`` with Keras's dtype policy for ``precision`` (variables stay float32)."""
    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy(KERAS_POLICIES[precision])
    try:
        return build()
    finally:
        keras.config.set_dtype_policy(old)


def low_precision_copy(model: keras.Model, build: Callable[[], keras.Model], precision: str) -> keras.Model:
    """``build()`` in ``precision``, holding ``model``'s weights: the same network in other arithmetic."""
    if precision == "float32":
        return model
    copy = build_in(precision, build)
    copy.set_weights(model.get_weights())
    return copy


def measure(models: dict[str, keras.Model], image_size: tuple[int, int], *, seed: int = 0) -> tuple[dict, float | None]:
    """Images/s of each model on one batch of random pixels, and bfloat16's error against the spread
    of float32's features (see TOLERANCE).

    Rounds alternate the precisions, so a change in the machine's load hits all of them; each
    precision's speed is its best round, after one untimed call that traces it.
    """
    images = np.random.default_rng(seed).integers(0, 256, (MEASURE_BATCH, *image_size, 3)).astype(np.float32)
    # The extraction's own compiled functions: the traces made here are reused by the extraction.
    calls = {name: compiled(model) for name, model in models.items()}
    outputs = {name: np.asarray(call(images), np.float32) for name, call in calls.items()}
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(MEASURE_ROUNDS):
        for name, call in calls.items():
            started = time.perf_counter()
            np.asarray(call(images))
            best[name] = min(best[name], time.perf_counter() - started)
    speeds = {name: round(MEASURE_BATCH / max(s, 1e-9), 2) for name, s in best.items()}
    error = None
    if "float32" in outputs and "bfloat16" in outputs:
        reference = outputs["float32"]
        spread = float(np.linalg.norm(reference - reference.mean(axis=0)))
        error = float(np.linalg.norm(outputs["bfloat16"] - reference) / max(spread, 1e-30))
    return speeds, error


def decide(speeds: dict, error: float | None, tolerance: float = TOLERANCE) -> str:
    """The fastest precision whose features are within ``tolerance`` of float32's (float32 on a tie)."""
    usable = ["float32"]
    if "bfloat16" in speeds and error is not None and np.isfinite(error) and error <= tolerance:
        usable.append("bfloat16")
    return max(usable, key=lambda p: (speeds.get(p, 0.0), p == "float32"))


def stored(cache_file: Path | None, key: str) -> Choice | None:
    """This host's earlier measurement for ``key``, as a Choice with source "measured earlier"."""
    if cache_file is None:
        return None
    try:
        entry = json.loads(Path(cache_file).read_text()).get(key)
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("used") not in KERAS_POLICIES:
        return None
    return Choice("auto", entry["used"], "measured earlier", entry.get("images_per_s", {}), entry.get("relative_error"))


def store(cache_file: Path | None, key: str, choice: Choice) -> None:
    """Add ``choice`` under ``key`` (written to a temporary file and renamed: readers never see half)."""
    if cache_file is None:
        return
    cache_file = Path(cache_file)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        entries = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        entries = {}
    entries[key] = {"used": choice.used, "images_per_s": choice.images_per_s, "relative_error": choice.relative_error}
    tmp = cache_file.with_name(f".{cache_file.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))
    tmp.replace(cache_file)


def choose_by_measuring(model: keras.Model, low: keras.Model, image_size, cache_file, key) -> Choice:
    """Time ``model`` (float32) against ``low``, its bfloat16 copy, decide, and store the answer for ``key``."""
    speeds, error = measure({"float32": model, "bfloat16": low}, image_size)
    choice = Choice("auto", decide(speeds, error), "measured", speeds, error)
    store(cache_file, key, choice)
    return choice
