"""Datasets never stay "processing" for ever: the queue down at upload, a killed ingest, a lost
message; and a failed version can be retried or deleted, from the API and the pages."""

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from tests.experiments.factories import make_dataset
from tests.projects.conftest import files_under
from tests.projects.images import make_zip, split_files
from webapp.core import storage as store
from webapp.core.redis import broker_task_ids, redis_client
from webapp.experiments.models import Experiment
from webapp.projects import recovery
from webapp.projects.datasets import QUEUE_DOWN, dataset_ingest, upload_dir
from webapp.projects.models import Dataset
from webapp.projects.tasks import reap_stale_ingests

Status = Dataset.Status
XHR = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest", "HTTP_ACCEPT": "application/json"}


@pytest.fixture
def redis_down():
    """Broker and result backend on a port where nothing listens, as when Redis is stopped."""
    from workers.celery import app

    def point_at(broker, backend):
        app.conf.broker_url, app.conf.result_backend = broker, backend
        app._pool = None
        app.amqp._producer_pool = None
        app._backend_cache = None
        app._local = threading.local()

    original = (app.conf.broker_url, app.conf.result_backend)
    point_at("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0")
    yield
    point_at(*original)


@pytest.fixture
def api(alice):
    client = APIClient()
    client.force_authenticate(alice)
    return client


def _upload(tmp_path, name="cats.zip"):
    path = make_zip(tmp_path / name, split_files(train=3, validation=1))
    return SimpleUploadedFile(name, path.read_bytes(), content_type="application/zip")


def _kept_upload(dataset_id: int) -> None:
    upload_dir(dataset_id).mkdir(parents=True)
    make_zip(upload_dir(dataset_id) / "archive.zip", split_files(train=3, validation=1))


def _stale_ingest(project, *, seconds_ago: int, worker="ingest-1@box") -> Dataset:
    """What a killed ingest leaves: a processing row with an old heartbeat, its raw upload, a
    half-built dataset folder and a staging folder whose process is gone."""
    then = timezone.now() - timedelta(seconds=seconds_ago)
    dataset = Dataset.objects.create(
        project=project, version=project.datasets.count() + 1, source=Dataset.Source.ZIP, original_name="cats.zip",
        task_id="t-1", worker=worker, started_at=then, heartbeat_at=then, progress=0.4,
    )  # fmt: skip
    _kept_upload(dataset.pk)
    partial = store.dataset_dir(dataset.pk) / "train" / "cats"
    partial.mkdir(parents=True)
    (partial / "cats0.jpg").write_bytes(b"half")
    staging = store.staging_root() / f"ingest-{dataset.pk}-x1y2"
    (staging / "raw" / "train").mkdir(parents=True)
    (staging / "raw" / "train" / "a.jpg").write_bytes(b"extracted")
    (staging / store.STAGING_LOCK).touch()  # its process died holding nothing
    return dataset


# --- the queue down at upload ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_upload_with_redis_down_answers_503_json_at_once_and_fails_the_dataset(
    storage, project, api, tmp_path, redis_down
):
    started = time.monotonic()
    response = api.post(f"/api/v1/projects/{project.pk}/datasets/", {"archive": _upload(tmp_path)})
    elapsed = time.monotonic() - started

    assert response.status_code == 503 and response["Content-Type"] == "application/json"
    assert elapsed < 5, f"answered after {elapsed:.1f} s"
    detail = response.json()["detail"]
    assert QUEUE_DOWN in detail and "upload it again" in detail and "127.0.0.1" not in detail
    dataset = Dataset.objects.get()
    assert (dataset.status, dataset.error) == ("failed", detail) and dataset.finished_at
    assert files_under(storage) == [], "the archive is removed"


@pytest.mark.django_db(transaction=True)
def test_the_upload_page_says_why_when_redis_is_down(storage, project, alice_client, tmp_path, redis_down):
    response = alice_client.post(
        reverse("projects:dataset_upload_zip", args=[project.pk]), {"archive": _upload(tmp_path)}
    )
    assert response.status_code == 503
    page = response.content.decode()
    assert "Ingest could not start: the job queue (Redis) could not be reached." in page
    assert Dataset.objects.get().status == "failed" and files_under(storage) == []


def test_a_publish_that_waits_for_a_result_fails_fast_too_when_redis_is_down(redis_down):
    from workers.celery import app

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="Retry limit exceeded while trying to reconnect"):
        app.send_task("workers.tasks.ping")
    assert time.monotonic() - started < 3, "the result backend retried for too long"


# --- a killed ingest -----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_reaper_fails_a_stale_ingest_removes_its_files_and_keeps_the_upload(storage, project, settings):
    stale = _stale_ingest(project, seconds_ago=settings.TL_INGEST_STALE_SECONDS + 60)
    alive = _stale_ingest(project, seconds_ago=5, worker="ingest-2@box")

    with store.staging(f"ingest-{alive.pk}"):  # a live ingest holds its staging folder
        outcome = reap_stale_ingests()  # what beat runs every minute

    assert outcome["reaped"] == [stale.pk]
    stale.refresh_from_db(), alive.refresh_from_db()
    assert stale.status == "failed" and stale.finished_at
    assert "no sign of life from ingest-1@box" in stale.error and "killed" in stale.error
    assert "The upload is kept: retry, or delete this version." in stale.error
    assert alive.status == "processing"
    assert [f for f in files_under(storage) if f"-{stale.pk}" in f or f"/{stale.pk}/" in f] == [
        f"uploads/dataset-{stale.pk}/archive.zip"
    ]


def test_a_heartbeat_that_lands_before_the_update_keeps_the_ingest_alive(storage, project, settings):
    dataset = _stale_ingest(project, seconds_ago=settings.TL_INGEST_STALE_SECONDS + 60)
    Dataset.objects.filter(pk=dataset.pk).update(heartbeat_at=timezone.now())
    assert recovery.datasets_reap() == []
    dataset.refresh_from_db()
    assert dataset.status == "processing"


# --- retry ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_reaped_version_is_retried_from_its_kept_upload_to_ready(storage, project, api, settings, clean_broker):
    dataset = _stale_ingest(project, seconds_ago=settings.TL_INGEST_STALE_SECONDS + 60)
    recovery.datasets_reap()

    response = api.post(f"/api/v1/datasets/{dataset.pk}/retry/")

    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["id"], body["version"], body["status"], body["error"]) == (dataset.pk, 1, "processing", "")
    dataset.refresh_from_db()
    assert dataset.task_id != "t-1" and dataset.task_id in broker_task_ids(["default"])
    assert dataset_ingest(dataset_id=dataset.pk, task_id="t-1", worker="old") == dataset, "the old message is void"
    dataset = dataset_ingest(dataset_id=dataset.pk, task_id=dataset.task_id, worker="w")
    assert dataset.status == "ready" and dataset.worker == "w"
    assert list(dataset.classes.values_list("name", "train_count", "validation_count")) == [
        ("cats", 3, 1),
        ("dogs", 3, 1),
    ]
    assert not upload_dir(dataset.pk).exists() and files_under(store.staging_root()) == []


@pytest.mark.django_db(transaction=True)
def test_retry_with_redis_down_answers_503_and_keeps_the_upload(storage, project, api, settings, redis_down):
    dataset = _stale_ingest(project, seconds_ago=settings.TL_INGEST_STALE_SECONDS + 60)
    recovery.datasets_reap()
    response = api.post(f"/api/v1/datasets/{dataset.pk}/retry/")
    assert response.status_code == 503
    assert response.json()["detail"] == (
        "Ingest could not start: the job queue (Redis) could not be reached. The upload is kept: retry once the "
        "queue is back."
    )
    dataset.refresh_from_db()
    assert dataset.status == "failed" and (upload_dir(dataset.pk) / "archive.zip").is_file()


def test_a_version_whose_upload_was_not_kept_cannot_be_retried_and_says_why(storage, project, api, tmp_path):
    refused = Dataset.objects.create(project=project, version=1, source="zip", status="failed", error="bad zip")
    ready = make_dataset(project, version=2)
    imported = Dataset.objects.create(project=project, version=3, source="import", status="failed")

    answers = {d.version: api.post(f"/api/v1/datasets/{d.pk}/retry/") for d in (refused, ready, imported)}

    assert {v: r.status_code for v, r in answers.items()} == {1: 409, 2: 409, 3: 409}
    assert answers[1].json()["detail"].startswith("Dataset v1 cannot be retried: its upload was not kept")
    assert "Upload the images again as a new version." in answers[1].json()["detail"]
    assert answers[2].json()["detail"] == "Dataset v2 is ready; only a failed version can be retried."
    assert "run the import again" in answers[3].json()["detail"]
    refused.refresh_from_db()
    assert refused.status == "failed" and refused.error == "bad zip"


def test_another_users_dataset_cannot_be_retried_or_deleted(storage, project, bob):
    dataset = Dataset.objects.create(project=project, version=1, source="zip", status="failed")
    client = APIClient()
    client.force_authenticate(bob)
    assert client.post(f"/api/v1/datasets/{dataset.pk}/retry/").status_code == 404
    assert client.delete(f"/api/v1/datasets/{dataset.pk}/").status_code == 404
    assert Dataset.objects.filter(pk=dataset.pk).exists()


# --- delete --------------------------------------------------------------------------------------


def _features(dataset) -> Path:
    entry = store.features_dir(dataset.feature_hash) / ("0" * 64)
    entry.mkdir(parents=True)
    (entry / "train.npy").write_bytes(b"features")
    return entry


def test_deleting_a_version_an_experiment_uses_is_refused_with_409_naming_it(storage, project, api):
    dataset = make_dataset(project)
    features = _features(dataset)
    experiment = Experiment.objects.create(
        project=project, dataset=dataset, name="blog baseline", mode="bottleneck", backbone="vgg16", config={}
    )
    before = files_under(storage)

    response = api.delete(f"/api/v1/datasets/{dataset.pk}/")

    assert response.status_code == 409
    assert response.json()["detail"] == (
        "Dataset v1 is used by 1 experiment(s) ('blog baseline'); delete those experiments first."
    )
    assert files_under(storage) == before
    experiment.delete()
    assert api.delete(f"/api/v1/datasets/{dataset.pk}/").status_code == 204
    assert not Dataset.objects.filter(pk=dataset.pk).exists()
    assert files_under(storage) == [] and not features.exists()


def test_deleting_a_version_keeps_the_features_another_dataset_shares(storage, project, api, alice):
    dataset = make_dataset(project, seed=1)
    twin = make_dataset(project, seed=1, version=2)  # same content: same hash, same features
    Dataset.objects.filter(pk=twin.pk).update(content_hash=dataset.content_hash)
    features = _features(dataset)
    assert api.delete(f"/api/v1/datasets/{dataset.pk}/").status_code == 204
    assert features.is_dir() and not store.dataset_dir(dataset.pk).exists()
    assert store.dataset_dir(twin.pk).is_dir()


@pytest.mark.django_db(transaction=True)
def test_deleting_a_failed_version_removes_its_kept_upload(storage, project, api, settings):
    dataset = _stale_ingest(project, seconds_ago=settings.TL_INGEST_STALE_SECONDS + 60)
    recovery.datasets_reap()
    assert api.delete(f"/api/v1/datasets/{dataset.pk}/").status_code == 204
    assert files_under(storage) == []


# --- the pages -----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_page_of_a_failed_version_offers_retry_and_delete(storage, project, alice_client, settings, clean_broker):
    dataset = _stale_ingest(project, seconds_ago=settings.TL_INGEST_STALE_SECONDS + 60)
    recovery.datasets_reap()
    url = reverse("projects:dataset_detail", args=[dataset.pk])
    page = alice_client.get(url).content.decode()
    assert "The upload is kept" in page and reverse("projects:dataset_retry", args=[dataset.pk]) in page

    response = alice_client.post(reverse("projects:dataset_retry", args=[dataset.pk]), follow=True)

    assert response.redirect_chain == [(url, 302)]
    assert "Dataset v1 is being checked and stored again." in response.content.decode()
    dataset.refresh_from_db()
    assert dataset.status == "processing"


def test_the_page_explains_when_a_version_cannot_be_retried(storage, project, alice_client):
    dataset = Dataset.objects.create(project=project, version=1, source="zip", status="failed", error="bad zip")
    page = alice_client.get(reverse("projects:dataset_detail", args=[dataset.pk])).content.decode()
    assert "The upload was not kept, so this version cannot be retried" in page
    assert reverse("projects:dataset_retry", args=[dataset.pk]) not in page
    response = alice_client.post(reverse("projects:dataset_retry", args=[dataset.pk]), follow=True)
    assert "Dataset v1 cannot be retried: its upload was not kept" in response.content.decode()


def test_a_version_is_deleted_from_its_page_after_confirming(storage, project, alice_client):
    dataset = make_dataset(project)
    url = reverse("projects:dataset_delete", args=[dataset.pk])
    assert "Delete dataset v1 of Cats and dogs?" in alice_client.get(url).content.decode()
    response = alice_client.post(url, follow=True)
    assert response.redirect_chain == [(reverse("projects:detail", args=[project.pk]), 302)]
    assert "Dataset v1 and its files were deleted." in response.content.decode()
    assert not Dataset.objects.exists() and files_under(storage) == []


def test_the_page_says_why_a_version_in_use_is_not_deleted(storage, project, alice_client):
    dataset = make_dataset(project)
    Experiment.objects.create(project=project, dataset=dataset, name="e1", mode="scratch", backbone="x", config={})
    response = alice_client.post(reverse("projects:dataset_delete", args=[dataset.pk]), follow=True)
    assert "Dataset v1 is used by 1 experiment(s) (&#x27;e1&#x27;)" in response.content.decode()
    assert Dataset.objects.filter(pk=dataset.pk).exists()


# --- a message that vanished ---------------------------------------------------------------------


def _waiting(project, **fields) -> Dataset:
    """A dataset no worker started, enqueued long ago, with its upload waiting."""
    dataset = Dataset.objects.create(
        project=project, version=project.datasets.count() + 1, source="zip", task_id="lost-1", **fields
    )
    Dataset.objects.filter(pk=dataset.pk).update(created_at=timezone.now() - timedelta(hours=1))
    _kept_upload(dataset.pk)
    dataset.refresh_from_db()
    return dataset


@pytest.mark.django_db(transaction=True)
def test_the_reaper_resends_an_ingest_whose_message_vanished_then_leaves_it(storage, project, clean_broker):
    dataset = _waiting(project, enqueue_count=1)

    assert recovery.datasets_requeue_orphans() == {"requeued": [dataset.pk], "failed": []}

    dataset.refresh_from_db()
    assert dataset.task_id == "lost-1" and dataset.enqueue_count == 2 and dataset.status == "processing"
    assert redis_client().llen("default") == 1
    later = timezone.now() + timedelta(hours=1)
    assert recovery.datasets_requeue_orphans(now=later) == {"requeued": [], "failed": []}, "its message now waits"
    assert redis_client().llen("default") == 1


@pytest.mark.django_db(transaction=True)
def test_the_reaper_fails_an_ingest_whose_message_keeps_vanishing(storage, project, clean_broker):
    dataset = _waiting(project, enqueue_count=recovery.MAX_ENQUEUES)
    assert recovery.datasets_requeue_orphans() == {"requeued": [], "failed": [dataset.pk]}
    dataset.refresh_from_db()
    assert dataset.status == "failed" and "message was lost 3 times" in dataset.error
    assert (upload_dir(dataset.pk) / "archive.zip").is_file(), "kept for a retry"


def test_the_reaper_concludes_nothing_when_redis_cannot_be_read(storage, project, settings):
    dataset = _waiting(project, enqueue_count=1)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert recovery.datasets_requeue_orphans() == {"requeued": [], "failed": []}
    dataset.refresh_from_db()
    assert dataset.status == "processing" and dataset.enqueue_count == 1


def test_a_second_delivery_does_not_start_an_ingest_again(storage, project, tmp_path):
    dataset = _waiting(project)
    Dataset.objects.filter(pk=dataset.pk).update(started_at=timezone.now(), worker="first")
    assert dataset_ingest(dataset_id=dataset.pk, task_id="lost-1", worker="second").status == "processing"
    dataset.refresh_from_db()
    assert dataset.worker == "first" and (upload_dir(dataset.pk) / "archive.zip").is_file()
