"""A real tiny model (trained once per session on generated 32x32 shapes) and a cast for the API."""

import io
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from webapp.core import storage  # noqa: E402
from webapp.experiments.models import Experiment, TrainedModel, TrainingJob  # noqa: E402
from webapp.predictions.serving import reset_model_cache  # noqa: E402
from webapp.predictions.throttles import KEY_PREFIX  # noqa: E402
from webapp.projects.models import Dataset, DatasetClass, Project  # noqa: E402
from webapp.projects.tokens import api_token_create  # noqa: E402

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
    """Train VGG16 (weights none, bottleneck, 6 cheap head epochs) on 32x32 shapes into the storage's models folder.

    Returns the files' facts (path, checksum, size, classes) and the in-process LoadedModel, whose
    answers the HTTP endpoints must reproduce exactly.
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
    output = storage.models_root() / "tiny-shapes"
    result = train(
        config=config,
        dataset_dir=data,
        output_dir=output,
        cache_dir=tmp_path_factory.mktemp("features"),
        dataset_hash="t",
    )
    yield {
        "path": str(output),
        "checksum": result.sha256,
        "size_bytes": result.model_bytes,
        "class_names": result.class_names,
        "loaded": LoadedModel.load(output, expected_sha256=result.sha256),
    }
    shutil.rmtree(output, ignore_errors=True)


def copy_model_files(tiny_model, name: str) -> str:
    """The same model under another folder: a distinct artifact for the serving cache."""
    target = storage.models_root() / name
    if not target.exists():
        shutil.copytree(tiny_model["path"], target)
    return str(target)


def make_dataset(project: Project, *, status=Dataset.Status.READY) -> Dataset:
    version = project.datasets.count() + 1
    dataset = Dataset.objects.create(project=project, version=version, status=status, source=Dataset.Source.ZIP)
    for name in CLASSES:
        DatasetClass.objects.create(dataset=dataset, name=name, train_count=16, validation_count=4)
    return dataset


def make_model(project: Project, tiny_model, *, published=False, path=None, checksum=None) -> TrainedModel:
    """The rows a succeeded training job leaves behind, pointing at the tiny model's files."""
    dataset = project.datasets.first() or make_dataset(project)
    experiment = Experiment.objects.create(
        project=project, dataset=dataset, name="tiny", mode="bottleneck", backbone="vgg16",
        config={"mode": "bottleneck", "image_size": [32, 32], "epochs": 2},
    )  # fmt: skip
    job = TrainingJob.objects.create(
        experiment=experiment, status=TrainingJob.Status.SUCCEEDED, progress=1.0, epoch=2, epochs=2,
        result={"evaluation": {"accuracy": 1.0, "labels": CLASSES, "confusion_matrix": [[4, 0, 0], [0, 4, 0], [0, 0, 4]],
                               "per_class": {c: {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 4}
                                             for c in CLASSES}}},
    )  # fmt: skip
    version = (project.models.order_by("-version").values_list("version", flat=True).first() or 0) + 1
    return TrainedModel.objects.create(
        project=project, experiment=experiment, job=job, version=version, path=path or tiny_model["path"],
        size_bytes=tiny_model["size_bytes"], checksum=checksum or tiny_model["checksum"],
        class_names=tiny_model["class_names"], image_size=[32, 32], backbone="vgg16", published=published,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_throttle_counters(settings):
    from webapp.core.redis import redis_client

    client = redis_client(timeout=2)
    keys = list(client.scan_iter(f"{KEY_PREFIX}*"))
    if keys:
        client.delete(*keys)
    yield


@pytest.fixture
def fresh_model_cache():
    reset_model_cache()
    yield
    reset_model_cache()


def api_client(user) -> APIClient:
    client = APIClient()
    _, key = api_token_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def alice_api(alice):
    return api_client(alice)


@pytest.fixture
def bob_api(bob):
    return api_client(bob)


@pytest.fixture
def alice_project(alice):
    return Project.objects.create(owner=alice, name="Shapes")


@pytest.fixture
def bob_project(bob):
    return Project.objects.create(owner=bob, name="Bob's shapes")
