"""Bottleneck features: run the frozen base once, cache the result on disk.

Cache entries live in ``cache_dir/<key>/`` and are written to a temporary sibling and
renamed into place, so a crash never leaves a half entry under a final name (docs/architecture.md, "Storage layout").
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from workers.ml.errors import Cancelled
from workers.ml.images import DECODER_VERSION

# Bump when decoding, resizing or the in-model preprocessing changes: old entries then
# stop matching instead of silently feeding stale features to new heads.
PREPROCESSING_VERSION = DECODER_VERSION


@dataclass
class FeatureSet:
    """Base outputs for both splits, in the splits' file order."""

    train: np.ndarray
    validation: np.ndarray
    cache_hit: bool
    extraction_s: float = 0.0


def cache_key(*, dataset_hash: str, backbone: str, weights_identity: str, image_size: tuple[int, int]) -> str:
    """Hex key over everything that changes the base's outputs (docs/architecture.md, "Storage layout")."""
    payload = json.dumps(
        {
            "dataset": dataset_hash,
            "backbone": backbone,
            "weights": weights_identity,
            "image_size": list(image_size),
            "preprocessing": PREPROCESSING_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(model):
    """One tf.function per model, kept while the model lives: tracing VGG16 costs seconds
    (profiled), and both splits, and the last partial batch, reuse the same trace
    (``reduce_retracing`` relaxes the batch dimension after the second shape)."""
    fn = _COMPILED.get(model)
    if fn is None:
        fn = _COMPILED[model] = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return fn


def extract_features(
    model,
    dataset: tf.data.Dataset,
    *,
    on_batch: Callable[[int], None] = lambda i: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> np.ndarray:
    """Run ``model`` (preprocess + frozen base) over image batches; (N, ...) float32.

    ``should_stop`` is polled before every batch (Cancelled), ``on_batch(i)`` after it.
    """
    run = _compiled(model)
    outputs = []
    for i, images in enumerate(dataset):
        if should_stop():
            raise Cancelled("training was cancelled during feature extraction")
        outputs.append(run(images).numpy())
        on_batch(i + 1)
    if not outputs:
        raise ValueError("no batches to extract features from")
    return np.concatenate(outputs).astype(np.float32, copy=False)


def _read_entry(entry: Path, meta: dict) -> FeatureSet | None:
    try:
        stored = json.loads((entry / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if stored != meta:
        return None
    return FeatureSet(np.load(entry / "train.npy"), np.load(entry / "validation.npy"), cache_hit=True)


def load_or_extract(
    *,
    key: str,
    cache_dir: Path,
    meta: dict,
    build_model: Callable,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset,
    train_batches: int,
    val_batches: int,
    on_batch: Callable[[int, int], None],
    should_stop: Callable[[], bool],
) -> FeatureSet:
    """Cached features for ``key`` or, on a miss, extract (calling ``build_model()`` for
    the preprocess+base model) and store them atomically.

    ``meta`` (class names and file lists) must match the stored entry for a hit, a cheap
    guard against a wrong dataset hash. ``on_batch(done, total)`` reports progress.
    """
    entry = Path(cache_dir) / key
    hit = _read_entry(entry, meta)
    if hit is not None:
        return hit
    started = time.perf_counter()
    model = build_model()
    total = train_batches + val_batches
    train = extract_features(model, train_ds, on_batch=lambda i: on_batch(i, total), should_stop=should_stop)
    val = extract_features(
        model, val_ds, on_batch=lambda i: on_batch(train_batches + i, total), should_stop=should_stop
    )
    elapsed = time.perf_counter() - started
    _write_entry(entry, meta, train, val)
    return FeatureSet(train, val, cache_hit=False, extraction_s=elapsed)


def _write_entry(entry: Path, meta: dict, train: np.ndarray, val: np.ndarray) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".{entry.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        np.save(tmp / "train.npy", train)
        np.save(tmp / "validation.npy", val)
        (tmp / "meta.json").write_text(json.dumps(meta))
        if entry.exists():
            # A stale entry (meta mismatch): replace it. Another worker may race us
            # here; whichever rename wins holds equivalent features.
            shutil.rmtree(entry, ignore_errors=True)
        try:
            tmp.rename(entry)
        except OSError:
            pass  # another process stored the same key first
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def num_batches(n: int, batch_size: int) -> int:
    """Batches in one pass over ``n`` items, last partial batch included."""
    return math.ceil(n / batch_size)
