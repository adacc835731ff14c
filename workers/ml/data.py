"""tf.data pipelines over ``<dataset_dir>/{train,validation}/<class>/<image>``.

Ingest has verified every image and stored the user's own bytes. Decoding here is
``workers.ml.images.decode_image``, the function predict uses too, so the arrays of
training, evaluation and serving are the same for the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import tensorflow as tf

from workers.ml.errors import DatasetError
from workers.ml.images import DECODE_RULE, IMAGE_SUFFIXES, decode_file

RESIZE_RULE = DECODE_RULE
# Ingest verified the files and enforced the upload limit; this only guards against a file
# replaced on disk behind its back.
STORED_MAX_PIXELS = 1 << 31


@dataclass(frozen=True)
class Split:
    """The files of one split, in a deterministic order (class, then file name)."""

    paths: list[str]  # absolute
    labels: np.ndarray  # int32 class indices
    relative: list[str]  # relative to dataset_dir, for reports

    def __len__(self) -> int:
        return len(self.paths)


def list_classes(dataset_dir: Path) -> list[str]:
    """Sorted class folder names under ``train/``; DatasetError unless there are >= 2."""
    train = Path(dataset_dir) / "train"
    if not train.is_dir():
        raise DatasetError(f"the dataset has no train/ folder ({train})")
    names = sorted(p.name for p in train.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(names) < 2:
        raise DatasetError(f"training needs at least 2 class folders in train/, found {len(names)}")
    return names


def has_split(dataset_dir: Path, split: str) -> bool:
    """True when ``dataset_dir/split/`` holds at least one image in a class folder."""
    folder = Path(dataset_dir) / split
    return folder.is_dir() and any(
        f.suffix.lower() in IMAGE_SUFFIXES for d in folder.iterdir() if d.is_dir() for f in d.iterdir()
    )


def list_split(dataset_dir: Path, split: str, class_names: list[str]) -> Split:
    """All images of ``split`` for ``class_names``; a missing class folder means no images."""
    root = Path(dataset_dir)
    paths, labels, relative = [], [], []
    for index, name in enumerate(class_names):
        folder = root / split / name
        if not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(str(f))
                labels.append(index)
                relative.append(f.relative_to(root).as_posix())
    extra = {p.name for p in (root / split).glob("*") if p.is_dir()} - set(class_names)
    if extra:
        raise DatasetError(f"{split}/ has class folders that train/ lacks: {sorted(extra)}")
    if not paths:
        raise DatasetError(f"the dataset has no images in {split}/")
    return Split(paths, np.asarray(labels, dtype=np.int32), relative)


def load_image(path: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    """A stored file -> float32 (H, W, 3) RGB 0-255 through ``images.decode_file``.

    Pillow runs in ``tf.numpy_function``; it releases the GIL while decoding and resizing,
    so a parallel map still decodes several images at once.
    """
    size = tuple(image_size)

    def decode(p) -> np.ndarray:
        return decode_file(p.decode(), size, max_pixels=STORED_MAX_PIXELS)

    image = tf.numpy_function(decode, [path], tf.uint8, stateful=False)
    return tf.cast(tf.ensure_shape(image, (*size, 3)), tf.float32)


def make_dataset(
    split: Split,
    image_size: tuple[int, int],
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    binary: bool = False,
    with_labels: bool = True,
) -> tf.data.Dataset:
    """Batched (images, labels) over ``split``: every image exactly once per pass.

    The last partial batch is kept (the blog's ``n // batch_size`` dropped it). Order is
    deterministic unless ``shuffle``; shuffling is seeded and differs per epoch. Binary
    labels are float (N, 1) for a single sigmoid unit.
    """
    ds = tf.data.Dataset.from_tensor_slices((split.paths, split.labels))
    if shuffle:
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    # map keeps element order (deterministic) even with parallel calls.
    ds = ds.map(partial(_load, image_size=image_size, binary=binary), num_parallel_calls=tf.data.AUTOTUNE)
    if not with_labels:
        ds = ds.map(lambda image, label: image)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _load(path, label, *, image_size, binary):
    image = load_image(path, image_size)
    if binary:
        label = tf.reshape(tf.cast(label, tf.float32), (1,))
    return image, label


def epoch_order(n: int, seed: int, epoch) -> tf.Tensor:
    """The order of ``n`` training items in ``epoch``: a pure function of (seed, epoch).

    Not tf.data's shuffle, whose per-epoch order comes from a generator state hidden in the
    iterator: a run resumed at epoch k draws epoch k's order again, as if it had never stopped
    (docs/decisions.md, "Resumable training jobs").
    """
    pair = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=pair)


def training_batches(
    split: Split,
    image_size: tuple[int, int],
    batch_size: int,
    *,
    seed: int,
    first_epoch: int,
    epochs: int,
    binary: bool = False,
) -> tf.data.Dataset:
    """(images, labels) batches of epochs ``first_epoch`` .. ``epochs - 1``, one after the other.

    Each epoch is every image once in ``epoch_order`` (the last batch may be partial, and no batch
    spans two epochs); fit with ``steps_per_epoch`` to read it as one stream.
    """
    paths = tf.constant(split.paths)
    labels = tf.constant(split.labels)
    load = partial(_load, image_size=image_size, binary=binary)

    def one_epoch(epoch):
        order = epoch_order(len(split), seed, epoch)
        ds = tf.data.Dataset.from_tensor_slices(order).map(lambda i: (tf.gather(paths, i), tf.gather(labels, i)))
        return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)

    return tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch).prefetch(tf.data.AUTOTUNE)


def _rows(x: np.ndarray, y: np.ndarray, indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Rows ``indices`` of ``x`` (read from it as numpy: a memory-mapped array is read a batch at a
    time, never loaded whole) and of ``y``."""

    def read(i):
        return np.ascontiguousarray(x[i], dtype=np.float32)

    rows = tf.numpy_function(read, [indices], tf.float32, stateful=False)
    rows = tf.ensure_shape(rows, (None, *x.shape[1:]))
    return rows, tf.gather(tf.constant(y), indices)


def array_batches(x: np.ndarray, y: np.ndarray, batch_size: int, *, seed: int, first_epoch: int, epochs: int):
    """``training_batches`` for arrays (features, frozen-prefix outputs), memory-mapped or in memory."""

    def one_epoch(epoch):
        order = epoch_order(len(x), seed, epoch)
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    batches = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
    return batches.map(lambda i: _rows(x, y, i)).prefetch(tf.data.AUTOTUNE)


def sequential_batches(x: np.ndarray, y: np.ndarray, batch_size: int) -> tf.data.Dataset:
    """(x, y) in order, ``batch_size`` rows at a time, read from ``x`` as ``array_batches`` does."""
    batches = tf.data.Dataset.range(len(x)).batch(batch_size)
    return batches.map(lambda i: _rows(x, y, i)).prefetch(tf.data.AUTOTUNE)
