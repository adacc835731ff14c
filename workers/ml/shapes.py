"""Generated coloured shapes on noisy backgrounds, one class per shape: the benchmarks' data and the
"shapes" sample a newcomer can train on without a download (workers/ml/samples.py)."""

import random

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ["ellipse", "rectangle", "triangle", "cross", "ring"]


def draw_shape(shape: str, size: int, rng: random.Random) -> Image.Image:
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


def shapes_arrays(*, train: int, test: int, size: int = 64, seed: int = 0):
    """``((x_train, y_train), (x_test, y_test))`` in keras.datasets' layout: uint8 (n, size, size, 3)
    images and their class indices into SHAPES, ``train`` and ``test`` images per class."""
    rng = random.Random(seed)
    out = []
    for count in (train, test):
        images, labels = [], []
        for label, shape in enumerate(SHAPES):
            for _ in range(count):
                images.append(np.asarray(draw_shape(shape, size, rng)))
                labels.append(label)
        out.append((np.stack(images), np.asarray(labels, np.uint8)))
    return tuple(out)
