"""Keras sample datasets as projects: from the page and the API, loaded by a real worker from a file
placed in Keras's cache (in place of the download), ingested through the normal path; offline, the
dataset fails naming the file to fetch, and Retry works once it is there."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from tests.helpers import celery_worker, wait_for
from webapp.projects.models import Dataset, Project

FASHION = ("train", 30), ("t10k", 20)


def place_fashion_mnist(keras_home: Path) -> None:
    """Fashion-MNIST in Keras's own format (gzip'd IDX files) where keras.datasets looks for it."""
    folder = keras_home / "datasets" / "fashion-mnist"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in FASHION:
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0" * 8 + labels.tobytes()))
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\0" * 16 + images.tobytes()))


def finished(dataset_id: int) -> Dataset:
    wait_for(lambda: Dataset.objects.get(pk=dataset_id).status != "processing", timeout=120, message="the ingest")
    return Dataset.objects.get(pk=dataset_id)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_sample_project_from_the_page_offline_first_then_with_the_file_in_place(
    storage, alice, alice_client, tmp_path, clean_broker
):
    keras_home = tmp_path / "keras"
    with celery_worker(name="samples", queues="default", KERAS_HOME=keras_home):
        response = alice_client.post(
            reverse("projects:create_from_sample"), {"name": "", "sample": "fashion_mnist", "per_class": "all"}
        )
        project = Project.objects.get(owner=alice)
        dataset = Dataset.objects.get(project=project)
        assert response.status_code == 302 and response["Location"] == f"/datasets/{dataset.pk}/"
        assert project.name == "Fashion-MNIST sample" and dataset.source == "sample"
        assert dataset.original_name == "Fashion-MNIST, all images"

        # No network here and nothing in Keras's cache: failed, naming the file and where it goes.
        dataset = finished(dataset.pk)
        assert dataset.status == "failed"
        assert dataset.error.startswith("Fashion-MNIST is not in Keras's cache and could not be downloaded")
        assert "train-labels-idx1-ubyte.gz saved as fashion-mnist/train-labels-idx1-ubyte.gz" in dataset.error
        assert "$KERAS_HOME/datasets" in dataset.error and str(tmp_path) not in dataset.error  # no server path

        place_fashion_mnist(keras_home)
        assert alice_client.post(reverse("projects:dataset_retry", args=[dataset.pk])).status_code in (200, 302)
        dataset = finished(dataset.pk)
    assert dataset.status == "ready", dataset.error
    classes = {c.name: (c.train_count, c.validation_count, c.test_count) for c in dataset.classes.all()}
    assert sorted(classes) == sorted(
        ["t-shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot"]
    )
    assert classes["trouser"] == (2, 1, 2)  # 3 training images per class: one held out; the test split's 2
    note = dataset.report["sample"]["note"]
    assert note.startswith("the Keras sample Fashion-MNIST (all):")
    assert "28x28 resized up to at least 32 px" in note
    page = alice_client.get(reverse("projects:dataset_detail", args=[dataset.pk])).content.decode()
    assert f"This version is {note}." in page
    # The sample's own test split is on the report, beside train and validation.
    assert "<th>Test</th>" in page and "<td>trouser</td><td>2</td><td>1</td><td>2</td>" in page


def test_the_api_queues_a_sample_and_names_what_is_wrong(storage, alice, clean_broker):
    from rest_framework.test import APIClient

    from webapp.accounts.models import ApiToken  # noqa: F401  (the token app is installed)

    project = Project.objects.create(owner=alice, name="Samples")
    client = APIClient()
    client.force_authenticate(alice)
    url = f"/api/v1/projects/{project.pk}/datasets/"
    answer = client.post(url, {"sample": "cifar10", "per_class": 500}, format="json")
    assert answer.status_code == 202, answer.content
    body = answer.json()
    assert body["source"] == "sample" and body["status"] == "processing" and body["test_fraction"] == 0.0
    assert body["original_name"] == "CIFAR-10, 500 per class"
    upload = Path(storage) / "uploads" / f"dataset-{body['id']}" / "sample.json"
    assert json.loads(upload.read_text()) == {"sample": "cifar10", "per_class": 500}

    wrong = client.post(url, {"sample": "imagenet"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["errors"][0]["field"] == "sample"
    wrong = client.post(url, {"sample": "mnist", "per_class": 0}, format="json")
    assert wrong.status_code == 400 and "per_class must be a whole number from 1 to 6000" in wrong.json()["detail"]
    wrong = client.post(url, {"sample": "mnist", "size": 5}, format="json")
    assert wrong.status_code == 400 and "size" in wrong.json()["detail"]
    other = Project.objects.create(owner=alice.__class__.objects.create_user("mallory"), name="Theirs")
    assert client.post(f"/api/v1/projects/{other.pk}/datasets/", {"sample": "mnist"}, format="json").status_code == 404


@pytest.mark.django_db
def test_the_command_fails_offline_naming_the_file(storage, alice):
    project = Project.objects.create(owner=alice, name="Digits")
    with pytest.raises(CommandError, match=r"Dataset v1 failed: CIFAR-10 is not in Keras's cache .* saved as "):
        call_command("import_sample", str(project.pk), "cifar10", "--per-class", "10")
    dataset = Dataset.objects.get(project=project)
    assert dataset.status == "failed" and dataset.source == "sample"
    with pytest.raises(CommandError, match="--per-class must be a whole number or 'all'; got 'lots'"):
        call_command("import_sample", str(project.pk), "mnist", "--per-class", "lots")
