"""Tiny projects and ready datasets written straight under storage (no ingest involved)."""

import io

import numpy as np
from PIL import Image, ImageDraw

from webapp.core import storage
from webapp.projects.models import Dataset, DatasetClass, Project

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60)}

BOTTLENECK = {
    "mode": "bottleneck",
    "backbone": "vgg16",
    "weights": "none",
    "image_size": [32, 32],
    "epochs": 2,
    "batch_size": 8,
    "head": {"units": 16, "dropout": 0.1},
}
# Many cheap epochs: long enough to cancel or kill mid-training, stopped by the test.
LONG_SCRATCH = {"mode": "scratch", "image_size": [32, 32], "epochs": 1000, "batch_size": 4}
# A fine-tune of a BOTTLENECK run: the base fixes the backbone's weights and the head.
FINETUNE = {"mode": "finetune", "backbone": "vgg16", "image_size": [32, 32], "epochs": 1, "batch_size": 8}


def make_project(owner, name="Shapes") -> Project:
    return Project.objects.create(owner=owner, name=name)


def _image(colour, rng, size=32) -> bytes:
    image = Image.fromarray(rng.integers(0, 90, (size, size, 3), dtype=np.uint8))
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    ImageDraw.Draw(image).ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_dataset(project, *, status=Dataset.Status.READY, n_train=16, n_val=6, seed=0, version=None) -> Dataset:
    """A dataset row plus its files: train/<class>/ and validation/<class>/ of 32x32 JPEGs."""
    version = version or (project.datasets.count() + 1)
    dataset = Dataset.objects.create(
        project=project,
        version=version,
        status=status,
        source=Dataset.Source.ZIP,
        content_hash=f"test-{seed}-{version}",
    )
    rng = np.random.default_rng(seed)
    root = storage.dataset_dir(dataset.pk)
    for name, colour in COLOURS.items():
        for split, count in (("train", n_train), ("validation", n_val)):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (folder / f"{i:03d}.jpg").write_bytes(_image(colour, rng))
        DatasetClass.objects.create(dataset=dataset, name=name, train_count=n_train, validation_count=n_val)
    return dataset
