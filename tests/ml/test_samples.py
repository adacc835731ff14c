"""Keras's sample datasets as class folders: conversion on generated arrays in Keras's shapes, the real
loader reading a file placed in Keras's cache, and the offline error naming the file to fetch."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workers.ml.samples import SAMPLES, write_sample

ROOT = Path(__file__).resolve().parents[2]


def cifar_like(n_train=60, n_test=30, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    return (
        (rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8), rng.permutation(np.arange(n_train) % classes)[:, None]),
        (rng.integers(0, 256, (n_test, 32, 32, 3), dtype=np.uint8), (np.arange(n_test) % classes)[:, None]),
    )  # fmt: skip


def mnist_like(n_train=40, n_test=20, seed=1):
    rng = np.random.default_rng(seed)
    return (
        (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), np.arange(n_train) % 10),
        (rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8), np.arange(n_test) % 10),
    )


def files(root: Path, split: str) -> dict[str, list[str]]:
    return {d.name: sorted(p.name for p in d.iterdir()) for d in sorted((root / split).iterdir())}


def test_cifar_arrays_become_named_class_folders_with_disjoint_splits(tmp_path):
    arrays = cifar_like()
    report = write_sample(arrays, SAMPLES["cifar10"], tmp_path, per_class=4, seed=3)
    train, validation, test = files(tmp_path, "train"), files(tmp_path, "validation"), files(tmp_path, "test")
    assert list(train) == sorted(SAMPLES["cifar10"].class_names)
    assert all(len(v) == 4 for v in train.values()) and all(len(v) == 1 for v in validation.values())
    assert all(len(v) == 1 for v in test.values())
    for name in train:  # validation images are other training images than the train split's
        assert not set(train[name]) & set(validation[name])
    # Each file is the array it is named after, under its own label's class name.
    (x_train, y_train), _ = arrays
    airplane = train["airplane"][0]
    index = int(airplane.removesuffix(".png"))
    assert int(y_train[index, 0]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "train" / "airplane" / airplane)), x_train[index])
    assert report["counts"]["train"]["truck"] == 4 and report["conversion"] == []
    # Seeded: the same choice again.
    again = write_sample(arrays, SAMPLES["cifar10"], tmp_path / "again", per_class=4, seed=3)
    assert files(tmp_path / "again", "train") == train and again["counts"] == report["counts"]


def test_grayscale_digits_become_rgb_at_the_backbones_minimum_size(tmp_path):
    (x_train, y_train), _ = arrays = mnist_like()
    report = write_sample(arrays, SAMPLES["mnist"], tmp_path, per_class=None)
    image = Image.open(next((tmp_path / "train" / "3").iterdir()))
    assert image.mode == "RGB" and image.size == (32, 32)
    pixels = np.asarray(image)
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    # All of Keras's training split, 20 % of each class held out as validation; its test split as test.
    counts = report["counts"]
    assert counts["train"]["3"] + counts["validation"]["3"] == 4 and counts["validation"]["3"] == 1
    assert sum(counts["test"].values()) == 20
    assert report["conversion"] == [
        "grayscale written as RGB (the grey value in all three channels)",
        "28x28 resized up to at least 32 px (bilinear), the smallest size every backbone accepts",
    ]


def _run_loader(keras_home: Path, key: str) -> subprocess.CompletedProcess:
    code = (
        "import json; from workers.ml.samples import load_arrays, SampleUnavailable\n"
        f"try:\n (x, y), (xt, yt) = load_arrays({key!r}); print(json.dumps([x.shape, y.shape, xt.shape, int(y[2])]))\n"
        "except SampleUnavailable as e: print('ERROR', e)"
    )
    env = {**os.environ, "KERAS_HOME": str(keras_home), "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_the_real_loader_reads_a_file_placed_in_keras_cache(tmp_path):
    # Fashion-MNIST in Keras's own format (gzip'd IDX files), where Keras looks for them: no download.
    folder = tmp_path / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 6)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0" * 8 + labels.tobytes()))
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0" * 16 + images.tobytes()))
    done = _run_loader(tmp_path, "fashion_mnist")
    assert json.loads(done.stdout.splitlines()[-1]) == [[12, 28, 28], [12], [6, 28, 28], 2], done.stderr


def test_offline_it_names_the_file_keras_needed_and_where_to_put_it(tmp_path):
    done = _run_loader(tmp_path, "cifar10")
    message = done.stdout.splitlines()[-1]
    assert message.startswith("ERROR CIFAR-10 is not in Keras's cache and could not be downloaded")
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz saved as " in message
    assert "saved as cifar-10-batches-py-target_archive, in Keras's datasets folder on the server" in message
    assert str(tmp_path) not in message


@pytest.mark.parametrize("key", list(SAMPLES))
def test_every_sample_names_each_of_its_classes_once(key):
    names = SAMPLES[key].class_names
    assert len(names) == len(set(names)) == {"cifar100": 100, "cifar100_coarse": 20, "shapes": 5}.get(key, 10)
    assert all(name == name.strip() and "/" not in name and name for name in names)


def test_the_generated_shapes_sample_needs_no_download(tmp_path):
    from workers.ml.samples import load_arrays
    from workers.ml.shapes import SHAPES

    assert SAMPLES["shapes"].class_names == tuple(SHAPES)
    report = write_sample(load_arrays("shapes"), SAMPLES["shapes"], tmp_path, per_class=10)
    assert report["counts"]["train"]["ring"] == 10 and report["counts"]["test"]["cross"] == 2
    assert Image.open(next((tmp_path / "validation" / "ellipse").iterdir())).size == (64, 64)
