"""Likely label errors, fixes and retraining through the app: the task's service run directly, the page,
the edits, the new version and Retrain, and another user's 404s."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.experiments.factories import make_dataset, make_project, make_run
from tests.predictions.conftest import api_client
from tests.projects.conftest import files_under, record_sent_tasks
from webapp.core import storage
from webapp.experiments.label_errors import label_review_run, label_review_start
from webapp.experiments.models import Experiment, LabelReview
from webapp.projects.datasets import dataset_ingest
from webapp.projects.models import Dataset, DatasetEdit

FLIPPED = ["train/red/flipped-000.jpg", "train/red/flipped-001.jpg", "validation/green/flipped-002.jpg"]


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice_client(alice):
    return _client(alice)


@pytest.fixture
def bob_client(bob):
    return _client(bob)


@pytest.fixture
def flipped(alice):
    """Two colours, 20 train and 6 validation images each, three of them (6 %) filed under the other colour,
    and a succeeded bottleneck run (VGG16, weights none, 32 px) whose features the search uses."""
    project = make_project(alice)
    dataset = make_dataset(project, n_train=20, n_val=6, seed=4)
    root = storage.dataset_dir(dataset.pk)
    for path in FLIPPED:
        split, cls, name = path.split("/")
        (root / split / ("green" if cls == "red" else "red") / name.removeprefix("flipped-")).rename(root / path)
    return dataset, make_run(project, dataset)


def test_the_task_ranks_the_flipped_images_first_and_the_page_shows_them(
    flipped, alice, bob, alice_client, bob_client, monkeypatch, django_capture_on_commit_callbacks
):
    dataset, experiment = flipped
    sent = record_sent_tasks(monkeypatch)
    with django_capture_on_commit_callbacks(execute=True):
        review = label_review_start(dataset=dataset)
    assert [(m["name"], m["args"], m["task_id"]) for m in sent] == [
        ("workers.tasks.find_label_errors", [review.pk], review.task_id)
    ]
    assert (review.status, review.experiment, review.features["backbone"]) == ("queued", experiment, "vgg16")
    assert label_review_run(review_id=review.pk, worker="test") == "ready"
    assert label_review_run(review_id=review.pk, worker="test") == "skipped"  # a redelivery
    review.refresh_from_db()
    ranked = [issue["path"] for issue in review.issues]
    assert set(ranked[:3]) == set(FLIPPED), review.issues[:5]
    top = review.issues[0]
    assert top["suggested"] != top["given"] and top["confidence"] < 0.5

    url = reverse("experiments:label_errors", args=[dataset.pk])
    page = alice_client.get(url).content.decode()
    assert f"of {review.result['images']} images are likely mislabelled" in page
    assert reverse("projects:dataset_image", args=[dataset.pk, top["path"]]) in page
    assert f'aria-label="Relabel {top["path"]}"' in page and "Create new version" not in page
    image = alice_client.get(reverse("projects:dataset_image", args=[dataset.pk, top["path"]]))
    assert image["Content-Type"] == "image/jpeg" and image.content[:2] == b"\xff\xd8"
    body = api_client(alice).get(f"/api/v1/datasets/{dataset.pk}/label-errors/?limit=2").json()
    assert (body["status"], body["count"], [r["path"] for r in body["results"]]) == ("ready", len(ranked), ranked[:2])
    for other in (
        bob_client.get(url),
        bob_client.get(reverse("projects:dataset_image", args=[dataset.pk, top["path"]])),
        bob_client.post(reverse("experiments:label_errors_start", args=[dataset.pk])),
        api_client(bob).get(f"/api/v1/datasets/{dataset.pk}/label-errors/"),
    ):
        assert other.status_code == 404


def test_edits_make_a_new_version_with_lineage_and_retrain_repeats_the_config_on_it(
    flipped, alice, alice_client, bob_client, monkeypatch, django_capture_on_commit_callbacks
):
    dataset, experiment = flipped
    sent = record_sent_tasks(monkeypatch)
    edit_url = reverse("projects:dataset_edit", args=[dataset.pk])
    back = reverse("experiments:label_errors", args=[dataset.pk])
    relabel = {"path": FLIPPED[0], "action": "relabel", "class": "green", "next": back, "fragment": "issue-1"}
    response = alice_client.post(edit_url, relabel)
    assert response.status_code == 302 and response["Location"] == f"{back}#issue-1"
    alice_client.post(edit_url, {"path": FLIPPED[2], "action": "exclude"})
    alice_client.post(edit_url, {"path": "train/red/003.jpg", "action": "exclude"})
    alice_client.post(edit_url, {"path": "train/red/003.jpg", "action": "restore"})  # undo
    assert bob_client.post(edit_url, relabel).status_code == 404
    for bad, message in (
        ({"path": "train/red/../x.jpg", "action": "exclude"}, "is not an image of a dataset"),
        ({"path": "train/red/999.jpg", "action": "exclude"}, "has no image train/red/999.jpg"),
        ({"path": FLIPPED[1], "action": "relabel", "class": "blue"}, "'blue' is not a class of dataset v1"),
        ({"path": FLIPPED[1], "action": "restore"}, "has no pending edit and was not left out"),
    ):
        page = alice_client.post(edit_url, {**bad, "next": back}, follow=True).content.decode()
        assert message in page.replace("&#x27;", "'"), (bad, message)
    edits = {e.path: (e.action, e.new_class) for e in DatasetEdit.objects.filter(dataset=dataset)}
    assert edits == {FLIPPED[0]: ("relabel", "green"), FLIPPED[2]: ("exclude", "")}
    page = alice_client.get(back).content.decode()
    assert "Pending edits: 1 relabelled, 1 excluded" in page and "relabel to <strong>green</strong>" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client(alice).post(f"/api/v1/datasets/{dataset.pk}/versions/")
    assert response.status_code == 202, response.content
    new = dataset_ingest(dataset_id=response.json()["id"])
    assert new.status == "ready", new.error
    assert new.report["lineage"]["note"] == "made from v1: 1 relabelled, 1 excluded"
    assert new.report["lineage"]["changes"] == {
        "relabelled": [{"path": FLIPPED[0], "from": "red", "to": "green"}], "excluded": [FLIPPED[2]], "restored": []
    }  # fmt: skip
    stored = files_under(storage.dataset_dir(new.pk))
    assert "train/green/flipped-000.jpg" in stored and FLIPPED[0] not in stored and FLIPPED[2] not in stored
    assert not DatasetEdit.objects.exists()
    # Restoring the excluded image in the new version brings it back from v1's files.
    alice_client.post(reverse("projects:dataset_edit", args=[new.pk]), {"path": FLIPPED[2], "action": "restore"})
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(reverse("projects:dataset_version_create", args=[new.pk]))
    third = dataset_ingest(dataset_id=Dataset.objects.get(version=3).pk)
    assert FLIPPED[2] in files_under(storage.dataset_dir(third.pk)), third.error

    detail = reverse("experiments:detail", args=[experiment.project_id, experiment.pk])
    assert "Same config on" in alice_client.get(detail).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(reverse("experiments:retrain", args=[experiment.project_id, experiment.pk]),
                                     {"dataset": new.pk})  # fmt: skip
    retrained = Experiment.objects.get(retrained_from=experiment, dataset=new)
    assert response["Location"] == reverse("experiments:detail", args=[experiment.project_id, retrained.pk])
    assert (retrained.name, retrained.config) == (f"{experiment.name} on v2", experiment.config)
    assert sent[-1]["name"] == "workers.tasks.run_training_job" and retrained.jobs.get().status == "queued"
    compare = f"experiment={experiment.pk}&amp;experiment={retrained.pk}"
    assert compare in alice_client.get(detail).content.decode()
    bob_retrain = bob_client.post(reverse("experiments:retrain", args=[experiment.project_id, experiment.pk]))
    assert bob_retrain.status_code == 404


def test_without_an_experiment_to_take_features_from_the_page_says_to_run_one(alice, alice_client):
    dataset = make_dataset(make_project(alice))
    url = reverse("experiments:label_errors", args=[dataset.pk])
    assert "run a bottleneck experiment on it first" in alice_client.get(url).content.decode()
    page = alice_client.post(reverse("experiments:label_errors_start", args=[dataset.pk]), follow=True)
    assert "run a bottleneck experiment on it first" in page.content.decode()
    response = api_client(alice).post(f"/api/v1/datasets/{dataset.pk}/label-errors/")
    assert response.status_code == 409 and "run a bottleneck experiment" in response.json()["detail"]
    assert not LabelReview.objects.exists()
    assert api_client(alice).post(f"/api/v1/datasets/{dataset.pk}/versions/").status_code == 409
