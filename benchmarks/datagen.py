"""Generated JPEG datasets for benchmarks: coloured shapes on noisy backgrounds, one class per shape."""

import random
from pathlib import Path

from PIL import Image, ImageDraw

SHAPES = ["ellipse", "rectangle", "triangle", "cross", "ring"]


def _draw(shape: str, size: int, rng: random.Random) -> Image.Image:
    bg = tuple(rng.randint(0, 90) for _ in range(3))
    img = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(img)
    for _ in range(size // 4):  # clutter so the task is not trivial
        x, y = rng.randrange(size), rng.randrange(size)
        draw.point((x, y), fill=tuple(rng.randint(0, 255) for _ in range(3)))
    colour = tuple(rng.randint(130, 255) for _ in range(3))
    r = rng.randint(size // 6, size // 3)
    cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
    box = [cx - r, cy - r, cx + r, cy + r]
    if shape == "ellipse":
        draw.ellipse(box, fill=colour)
    elif shape == "rectangle":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    elif shape == "cross":
        w = max(2, r // 3)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=colour)
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=colour)
    else:
        draw.ellipse(box, outline=colour, width=max(2, r // 4))
    return img


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
