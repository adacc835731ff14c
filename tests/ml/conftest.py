"""Fixtures for the ML engine tests: tiny class folders of generated shape images."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import io  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

SHAPES = {
    "circle": (220, 40, 40),
    "square": (40, 200, 60),
    "triangle": (50, 70, 230),
}


def shape_image(shape: str, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """A noisy background with one coloured shape at a random place and size."""
    background = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    colour = tuple(int(np.clip(c + rng.integers(-30, 30), 0, 255)) for c in SHAPES[shape])
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    return image


def write_dataset(root: Path, classes, n_train: int, n_val: int, seed: int = 0, size: int = 32) -> Path:
    """Write ``root/{train,validation}/<class>/NNN.jpg`` and return ``root``."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("validation", n_val)):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                buf = io.BytesIO()
                shape_image(name, rng, size).save(buf, format="JPEG", quality=92)
                (folder / f"{i:03d}.jpg").write_bytes(buf.getvalue())
    return root


@pytest.fixture(scope="session")
def two_class_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("two"), ["circle", "square"], 30, 10)


@pytest.fixture(scope="session")
def three_class_dir(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("three"), list(SHAPES), 30, 10, seed=1)


@pytest.fixture(scope="session")
def with_test_split(tmp_path_factory):
    """Two classes with a test split: 24 + 8 + 6 images a class."""
    root = write_dataset(tmp_path_factory.mktemp("withtest"), ["circle", "square"], 24, 8, seed=3)
    held_out = write_dataset(tmp_path_factory.mktemp("heldout"), ["circle", "square"], 0, 6, seed=4)
    (held_out / "validation").rename(root / "test")
    return root


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("features")


def tiny_config(mode, **overrides):
    """A fast config: 32x32 images, random weights, a few epochs."""
    from workers.ml.config import parse_config

    data = {"mode": mode, "image_size": [32, 32], "epochs": 4, "batch_size": 16, "seed": 7}
    if mode == "bottleneck":  # scratch has no pretrained weights; a fine-tune keeps its base's
        data["weights"] = "none"
    data.update(overrides)
    return parse_config(data)


@pytest.fixture(scope="session")
def bottleneck_run(three_class_dir, feature_cache, tmp_path_factory):
    """A trained three-class bottleneck model and the progress reports it sent."""
    from workers.ml.train import train

    reports = []
    result = train(
        config=tiny_config("bottleneck"),
        dataset_dir=three_class_dir,
        output_dir=tmp_path_factory.mktemp("models") / "bottleneck",
        cache_dir=feature_cache,
        dataset_hash="three-v1",
        on_progress=reports.append,
    )
    return result, reports
