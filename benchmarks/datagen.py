"""Generated JPEG datasets for benchmarks: coloured shapes on noisy backgrounds, one class per shape."""

import random
from pathlib import Path

from workers.ml.shapes import SHAPES  # noqa: F401  (one generator: the engine's)
from workers.ml.shapes import draw_shape as _draw


def make_dataset(
    root: Path, *, classes: int = 2, train: int = 300, validation: int = 100, size: int = 150, seed: int = 0
) -> Path:
    """Write root/train/<class>/*.jpg and root/validation/<class>/*.jpg; return root."""
    rng = random.Random(seed)
    for split, count in (("train", train), ("validation", validation)):
        for shape in SHAPES[:classes]:
            folder = root / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                _draw(shape, size, rng).save(folder / f"{shape}_{i:04d}.jpg", quality=90)
    return root
