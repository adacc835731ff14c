"""Rows pointing at the real tiny model (tests/trained.py) and a cast for the API."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from tests.trained import CLASSES, COLOURS, copy_model_files, link_model_files, shape_png  # noqa: E402,F401  (re-exported)
from webapp.accounts.services import api_token_create  # noqa: E402
from webapp.core import storage  # noqa: E402
from webapp.experiments.models import Experiment, TrainedModel, TrainingJob  # noqa: E402
from webapp.predictions.serving import reset_model_cache  # noqa: E402
from webapp.predictions.throttles import KEY_PREFIX  # noqa: E402
from webapp.projects.models import Dataset, DatasetClass, Project  # noqa: E402


def make_dataset(project: Project, *, status=Dataset.Status.READY) -> Dataset:
    version = project.datasets.count() + 1
    dataset = Dataset.objects.create(project=project, version=version, status=status, source=Dataset.Source.ZIP)
    for name in CLASSES:
        DatasetClass.objects.create(dataset=dataset, name=name, train_count=16, validation_count=4)
    return dataset


def make_model(
    project: Project, tiny_model, *, published=False, path=None, checksum=None, curve=None, threshold=None
) -> TrainedModel:
    """The rows a succeeded training job leaves behind, pointing at the tiny model's files (linked into
    the current storage root unless `path` names other files); the job's threshold curve is the tiny
    model's own unless `curve` is given."""
    dataset = project.datasets.first() or make_dataset(project)
    experiment = Experiment.objects.create(
        project=project, dataset=dataset, name="tiny", mode="bottleneck", backbone="vgg16",
        config={"mode": "bottleneck", "backbone": "vgg16", "weights": "none", "image_size": [32, 32], "epochs": 2},
    )  # fmt: skip
    job = TrainingJob.objects.create(
        experiment=experiment, status=TrainingJob.Status.SUCCEEDED, progress=1.0, epoch=2, epochs=2,
        result={"evaluation": {"accuracy": 1.0, "labels": CLASSES, "confusion_matrix": [[4, 0, 0], [0, 4, 0], [0, 0, 4]],
                               "per_class": {c: {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 4}
                                             for c in CLASSES}},
                "threshold_curve": tiny_model["threshold_curve"] if curve is None else curve},
    )  # fmt: skip
    version = (project.models.order_by("-version").values_list("version", flat=True).first() or 0) + 1
    return TrainedModel.objects.create(
        project=project, experiment=experiment, job=job, version=version,
        path=storage.key_of(path or link_model_files(tiny_model)),
        size_bytes=tiny_model["size_bytes"], checksum=checksum or tiny_model["checksum"],
        class_names=tiny_model["class_names"], image_size=[32, 32], backbone="vgg16", published=published,
        threshold=threshold,
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
