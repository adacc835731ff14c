"""Bottleneck features: run the frozen base once, cache the result on disk.

Cache entries live in ``cache_dir/<key>/`` and are written to a temporary sibling and
renamed into place, so a crash never leaves a half entry under a final name (docs/architecture.md, "Storage layout").
A test split's features are added to an entry later, one file per test split, moved into place the same way.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
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
    """Base outputs for both splits, in the splits' file order.

    Memory-mapped from the cache entry (read-only): a 100,000-image dataset at 150x150 is 3.2 GB of
    VGG16 features, which a worker reads batch by batch instead of holding whole.
    """

    train: np.ndarray
    validation: np.ndarray
    cache_hit: bool
    extraction_s: float = 0.0


def cache_key(
    *,
    dataset_hash: str,
    backbone: str,
    weights_identity: str,
    image_size: tuple[int, int],
    precision: str = "float32",
) -> str:
    """Hex key over everything that changes the base's outputs (docs/architecture.md, "Storage layout").

    ``precision`` is the arithmetic of the training features (workers/ml/precision.py); float32
    keys are those of entries written before precision was a choice.
    """
    fields = {
        "dataset": dataset_hash,
        "backbone": backbone,
        "weights": weights_identity,
        "image_size": list(image_size),
        "preprocessing": PREPROCESSING_VERSION,
    }
    if precision != "float32":
        fields["precision"] = precision
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled(model):
    """One tf.function per model, kept while the model lives: tracing VGG16 costs seconds
    (profiled), and both splits, and the last partial batch, reuse the same trace
    (``reduce_retracing`` relaxes the batch dimension after the second shape)."""
    fn = _COMPILED.get(model)
    if fn is None:
        fn = _COMPILED[model] = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return fn


def outputs_by_batch(model, dataset, on_batch, should_stop):
    """float32 outputs of ``model`` batch by batch; Cancelled is polled before every batch."""
    run = compiled(model)
    for i, images in enumerate(dataset):
        if should_stop():
            raise Cancelled("training was cancelled during feature extraction")
        yield np.asarray(run(images), dtype=np.float32)
        on_batch(i + 1)


def extract_features(
    model,
    dataset: tf.data.Dataset,
    *,
    on_batch: Callable[[int], None] = lambda i: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> np.ndarray:
    """Run ``model`` (preprocess + frozen base) over image batches; (N, ...) float32 in memory.

    ``should_stop`` is polled before every batch (Cancelled), ``on_batch(i)`` after it.
    """
    outputs = list(outputs_by_batch(model, dataset, on_batch, should_stop))
    if not outputs:
        raise ValueError("no batches to extract features from")
    return np.concatenate(outputs)


def extract_to_file(
    model,
    dataset: tf.data.Dataset,
    path: Path,
    count: int,
    *,
    on_batch: Callable[[int], None] = lambda i: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """``extract_features`` streamed into the .npy file ``path`` (``count`` rows): memory stays one
    batch whatever the dataset's size."""
    out = None
    done = 0
    for batch in outputs_by_batch(model, dataset, on_batch, should_stop):
        if out is None:
            out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(count, *batch.shape[1:]))
        if done + len(batch) > count:
            raise ValueError(f"more images than the {count} announced")
        out[done : done + len(batch)] = batch
        done += len(batch)
    if out is None:
        raise ValueError("no batches to extract features from")
    if done != count:
        raise ValueError(f"extracted {done} images, expected {count}")
    out.flush()
    del out


def read_entry(entry: Path, meta: dict) -> FeatureSet | None:
    """The stored entry, memory-mapped, when its meta matches ``meta``; None otherwise."""
    try:
        stored = json.loads((entry / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if stored != meta:
        return None
    try:
        train = np.load(entry / "train.npy", mmap_mode="r")
        validation = np.load(entry / "validation.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None  # removed or damaged behind the meta's back: extract again
    return FeatureSet(train, validation, cache_hit=True)


def test_features_path(entry: Path, class_names: list[str], relative: list[str]) -> Path:
    """Where ``entry`` keeps the float32 base outputs of one test split: a file of its own, named by
    a digest of the split's files and the class names (docs/decisions.md, "Test features beside the
    entry"), so the entry's meta.json, and what makes it match, stay as they were."""
    listed = json.dumps({"class_names": list(class_names), "test": list(relative)}, sort_keys=True)
    return Path(entry) / f"test-{hashlib.sha256(listed.encode()).hexdigest()[:16]}.npy"


def read_test_features(path: Path, count: int) -> np.ndarray | None:
    """The stored test features at ``path``, memory-mapped, when they hold ``count`` rows; None otherwise."""
    try:
        found = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None  # absent (an entry written before test features were kept) or damaged
    return found if found.ndim >= 2 and len(found) == count else None


def extract_test_features(
    path: Path,
    model,
    dataset: tf.data.Dataset,
    count: int,
    *,
    on_batch: Callable[[int], None] = lambda i: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> np.ndarray:
    """Extract ``count`` test images' features into ``path`` (``test_features_path``), memory-mapped.

    ``model`` must be the float32 base the saved model holds. The rows are written to a hidden
    sibling of the entry (a name the storage sweep removes if this process is killed) and moved to
    ``path`` with os.replace once complete: a cancel (``should_stop``, polled before every batch)
    or a failure leaves no file under ``path``, and a concurrent writer of the same file is harmless.
    """
    path = Path(path)
    entry = path.parent
    tmp = entry.parent / f".{entry.name}.tmp-{path.stem}-{uuid.uuid4().hex}.npy"
    try:
        extract_to_file(model, dataset, tmp, count, on_batch=on_batch, should_stop=should_stop)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    found = read_test_features(path, count)
    if found is None:
        raise OSError(f"the test features {path.name} of {entry.name} could not be read back after writing them")
    return found


def extract_entry(
    entry: Path,
    meta: dict,
    *,
    train_model,
    validation_model,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset,
    counts: tuple[int, int],
    batches: tuple[int, int],
    on_batch: Callable[[int, int], None],
    should_stop: Callable[[], bool],
) -> FeatureSet:
    """Extract both splits straight into a temporary sibling of ``entry`` and rename it into place.

    ``train_model`` may compute in lower precision (workers/ml/precision.py); ``validation_model`` is
    the float32 network the saved model holds. ``on_batch(done, total)`` reports progress.
    """
    started = time.perf_counter()
    total = sum(batches)
    entry = Path(entry)
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".{entry.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        extract_to_file(
            train_model, train_ds, tmp / "train.npy", counts[0],
            on_batch=lambda i: on_batch(i, total), should_stop=should_stop,
        )  # fmt: skip
        extract_to_file(
            validation_model, val_ds, tmp / "validation.npy", counts[1],
            on_batch=lambda i: on_batch(batches[0] + i, total), should_stop=should_stop,
        )  # fmt: skip
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
    found = read_entry(entry, meta)
    if found is None:
        raise OSError(f"the feature cache entry {entry.name} could not be read back after writing it")
    return FeatureSet(found.train, found.validation, cache_hit=False, extraction_s=time.perf_counter() - started)


def load_or_extract(
    *,
    key: str,
    cache_dir: Path,
    meta: dict,
    build_model: Callable,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset,
    counts: tuple[int, int],
    on_batch: Callable[[int, int], None],
    should_stop: Callable[[], bool],
) -> FeatureSet:
    """Cached float32 features for ``key`` or, on a miss, extract them (``build_model()`` builds the
    preprocess+base model) and store them atomically.

    ``meta`` (class names and file lists) must match the stored entry for a hit, a cheap
    guard against a wrong dataset hash. ``on_batch(done, total)`` reports progress.
    """
    entry = Path(cache_dir) / key
    hit = read_entry(entry, meta)
    if hit is not None:
        return hit
    model = build_model()
    return extract_entry(
        entry, meta, train_model=model, validation_model=model, train_ds=train_ds, val_ds=val_ds,
        counts=counts, batches=(num_batches(counts[0], EXTRACTION_BATCH), num_batches(counts[1], EXTRACTION_BATCH)),
        on_batch=on_batch, should_stop=should_stop,
    )  # fmt: skip


EXTRACTION_BATCH = 32  # independent of the head's batch size: bigger keeps the base busy


def num_batches(n: int, batch_size: int) -> int:
    """Batches in one pass over ``n`` items, last partial batch included."""
    return math.ceil(n / batch_size)
