"""A real tiny model, trained once per session on generated 32x32 shapes, for tests that serve or
publish models (tests/predictions, tests/experiments)."""

import io
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from webapp.core import storage  # noqa: E402

CLASSES = ["circle", "square", "triangle"]
COLOURS = {"circle": (220, 40, 40), "square": (40, 200, 60), "triangle": (50, 70, 230)}


def shape_png(shape: str, seed: int, size: int = 32, fmt: str = "PNG") -> bytes:
    """A noisy background with one coloured shape, encoded as `fmt`."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 90, (size, size, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    box = [cx - r, cy - r, cx + r, cy + r]
    if shape == "circle":
        draw.ellipse(box, fill=COLOURS[shape])
    elif shape == "square":
        draw.rectangle(box, fill=COLOURS[shape])
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=COLOURS[shape])
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Train VGG16 (weights none, bottleneck, 6 cheap head epochs) on 32x32 shapes, once per session.

    Returns the files' facts (path, checksum, size, classes), its validation threshold curve and the
    in-process LoadedModel, whose answers the HTTP endpoints must reproduce exactly. The files stay
    outside every storage root: tests reach them through link_model_files, so that no test's deletes
    (a project, a model whose row names the folder) can take them from the tests after it.
    """
    from workers.ml.config import parse_config
    from workers.ml.predict import LoadedModel
    from workers.ml.train import train

    data = tmp_path_factory.mktemp("shapes")
    for split, count in (("train", 16), ("validation", 4)):
        for c, name in enumerate(CLASSES):
            folder = data / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                (folder / f"{i}.png").write_bytes(
                    shape_png(name, seed=1000 * c + i + (500 if split == "validation" else 0))
                )
    config = parse_config(
        {"mode": "bottleneck", "weights": "none", "image_size": [32, 32], "epochs": 6, "batch_size": 8,
         "head": {"units": 16}, "seed": 7}
    )  # fmt: skip
    output = tmp_path_factory.mktemp("tiny-model") / "tiny-shapes"
    result = train(
        config=config,
        dataset_dir=data,
        output_dir=output,
        cache_dir=tmp_path_factory.mktemp("features"),
        dataset_hash="t",
    )
    return {
        "path": str(output),
        "checksum": result.sha256,
        "size_bytes": result.model_bytes,
        "class_names": result.class_names,
        "threshold_curve": result.threshold_curve,
        "loaded": LoadedModel.load(output, expected_sha256=result.sha256),
    }


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


def link_model_files(tiny_model, name: str = "tiny-shapes") -> str:
    """The model's files as hard links in the current storage root's models folder (made again if a
    test deleted them): cheap, and a test that removes the folder removes only its links. Files that a
    test rewrites in place must be copies instead (copy_model_files)."""
    target = storage.models_root() / name
    if not (target / "model.keras").exists():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(tiny_model["path"], target, copy_function=_link_or_copy)
    return str(target)


def copy_model_files(tiny_model, name: str) -> str:
    """The same model under another folder of the current storage root: a distinct artifact."""
    target = storage.models_root() / name
    if not target.exists():
        shutil.copytree(tiny_model["path"], target)
    return str(target)
