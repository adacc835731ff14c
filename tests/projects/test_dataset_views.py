import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.projects.conftest import files_under, record_sent_tasks
from tests.projects.images import image_bytes, make_zip, split_files
from webapp.projects.datasets import dataset_ingest, upload_dir
from webapp.projects.models import Dataset, UploadSession

XHR = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest", "HTTP_ACCEPT": "application/json"}


@pytest.fixture
def no_broker(monkeypatch):
    """Record sent tasks instead of using Redis (the worker test covers the real round trip)."""
    return record_sent_tasks(monkeypatch)


def _zip(tmp_path, files=None):
    path = make_zip(tmp_path / "cats.zip", files or split_files(train=4, validation=2))
    return SimpleUploadedFile("cats.zip", path.read_bytes(), content_type="application/zip")


def _ready_dataset(tmp_path, client, project):
    client.post(reverse("projects:dataset_upload_zip", args=[project.pk]), {"archive": _zip(tmp_path)}, **XHR)
    dataset = Dataset.objects.filter(project=project).order_by("-version").first()
    return dataset_ingest(dataset_id=dataset.pk)


def _folder_batches(client, project, batches):
    start = client.post(reverse("projects:folder_upload_start", args=[project.pk]))
    assert start.status_code == 201
    session = start.json()
    answers = []
    for batch in batches:
        data = {
            "paths": [p for p, _ in batch],
            "files": [SimpleUploadedFile(p.rsplit("/", 1)[-1], b) for p, b in batch],
        }
        answers.append(client.post(session["files_url"], data))
    return session, answers


def test_it_shows_the_upload_page_with_limits(storage, project, alice_client, settings):
    response = alice_client.get(reverse("projects:dataset_upload", args=[project.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "webkitdirectory" in body and 'name="archive"' in body and "js/upload.js" in body
    assert f'data-batch-files="{settings.TL_UPLOAD_BATCH_FILES}"' in body
    assert "40,000,000" in body and "100×" in body


def test_it_accepts_a_zip_with_202_and_a_processing_dataset(
    storage, project, alice_client, tmp_path, no_broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(
            reverse("projects:dataset_upload_zip", args=[project.pk]), {"archive": _zip(tmp_path)}, **XHR
        )
    assert response.status_code == 202
    dataset = Dataset.objects.get(project=project)
    assert response.json() == {
        "dataset": dataset.pk,
        "version": 1,
        "status": "processing",
        "url": reverse("projects:dataset_detail", args=[dataset.pk]),
    }
    assert no_broker == [
        {
            "name": "workers.tasks.ingest_dataset",
            "args": [dataset.pk],
            "task_id": dataset.task_id,
            "ignore_result": True,
        }
    ]
    page = alice_client.get(response.json()["url"])
    assert b"hx-get" in page.content and b"processing" in page.content


def test_it_redirects_a_plain_form_post_to_the_dataset(storage, project, alice_client, tmp_path, no_broker):
    response = alice_client.post(reverse("projects:dataset_upload_zip", args=[project.pk]), {"archive": _zip(tmp_path)})
    dataset = Dataset.objects.get(project=project)
    assert response.status_code == 302 and response.url == reverse("projects:dataset_detail", args=[dataset.pk])


def test_the_form_sets_the_uploads_test_split(storage, project, alice_client, tmp_path, no_broker):
    page = alice_client.get(reverse("projects:dataset_upload", args=[project.pk])).content.decode()
    assert (
        'name="test_percent"' in page
        and 'max="50"' in page
        and 'value="10"' in page
        and "(stored exactly as sent)" in page
    )
    url = reverse("projects:dataset_upload_zip", args=[project.pk])
    alice_client.post(url, {"archive": _zip(tmp_path), "test_percent": "25"})
    assert Dataset.objects.get(project=project).test_fraction == 0.25
    refused = alice_client.post(url, {"archive": _zip(tmp_path), "test_percent": "80"}, **XHR)
    assert refused.status_code == 400
    assert refused.json()["error"] == "The test split must be a percentage from 0 to 50, got '80'."
    assert Dataset.objects.count() == 1


def test_it_answers_a_bad_zip_with_the_reason(storage, project, alice_client, no_broker):
    bad = SimpleUploadedFile("cats.zip", b"plain text")
    response = alice_client.post(reverse("projects:dataset_upload_zip", args=[project.pk]), {"archive": bad}, **XHR)
    assert response.status_code == 400 and response.json()["error"] == "cats.zip is not a zip archive."
    assert Dataset.objects.count() == 0


def test_it_uploads_a_folder_in_batches_keeping_relative_paths(storage, project, alice_client, settings, no_broker):
    settings.TL_UPLOAD_BATCH_FILES = 4
    files = list(split_files("seed/", train=3, validation=1).items()) + [("seed/.DS_Store", b"x")]
    batches = [files[i : i + 4] for i in range(0, len(files), 4)]
    session, answers = _folder_batches(alice_client, project, batches)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[-1].json()["file_count"] == 8
    stored = files_under(storage / "uploads" / f"session-{session['session']}")
    assert "files/seed/train/cats/cats0.jpg" in stored and len(stored) == 8
    finish = alice_client.post(session["finish_url"])
    assert finish.status_code == 202
    dataset = Dataset.objects.get(project=project)
    assert (dataset.source, dataset.status) == ("folder", "processing")
    assert not UploadSession.objects.exists() and (upload_dir(dataset.pk) / "files" / "seed").is_dir()
    dataset = dataset_ingest(dataset_id=dataset.pk)
    assert dataset.status == "ready" and dataset.report["wrapper"] == "seed"
    assert list(dataset.classes.values_list("train_count", "validation_count")) == [(3, 1), (3, 1)]


@pytest.mark.parametrize(
    "bad", ["../evil.jpg", "/etc/evil.jpg", "seed/../../evil.jpg", "seed\\evil.jpg", "seed//x.jpg"]
)
def test_it_rejects_a_bad_relative_path_and_stores_nothing_of_the_batch(storage, project, alice_client, bad):
    batch = [("seed/cats/ok.jpg", image_bytes(1)), (bad, image_bytes(2))]
    session, (answer,) = _folder_batches(alice_client, project, [batch])
    assert answer.status_code == 400
    assert repr(bad) in answer.json()["error"] and "nothing from this batch was stored" in answer.json()["error"]
    assert files_under(storage / "uploads") == []
    assert UploadSession.objects.get().file_count == 0


def test_it_rejects_a_batch_whose_paths_do_not_match_its_files(storage, project, alice_client):
    session = alice_client.post(reverse("projects:folder_upload_start", args=[project.pk])).json()
    answer = alice_client.post(session["files_url"], {"paths": ["a/b.jpg"], "files": []})
    assert answer.status_code == 400 and "0 files but 1 relative paths" in answer.json()["error"]


def test_it_rejects_a_file_uploaded_twice(storage, project, alice_client):
    batch = [("seed/cats/a.jpg", image_bytes(1))]
    session, answers = _folder_batches(alice_client, project, [batch, batch])
    assert [a.status_code for a in answers] == [200, 400]
    assert "seed/cats/a.jpg was already uploaded" in answers[1].json()["error"]
    assert UploadSession.objects.get().file_count == 1


def test_it_shows_the_report_with_thumbnails(storage, project, alice_client, tmp_path, no_broker):
    dataset = _ready_dataset(tmp_path, alice_client, project)
    body = alice_client.get(reverse("projects:dataset_detail", args=[dataset.pk])).content.decode()
    cats = dataset.classes.get(name="cats")
    assert "class-chart-data" in body and "<td>cats</td><td>4</td><td>2</td>" in body
    thumb_url = reverse("projects:dataset_thumbnail", args=[dataset.pk, cats.pk, 0])
    assert thumb_url in body
    thumb = alice_client.get(thumb_url)
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/jpeg"
    assert b"".join(thumb.streaming_content)[:2] == b"\xff\xd8"
    assert alice_client.get(reverse("projects:dataset_thumbnail", args=[dataset.pk, cats.pk, 9])).status_code == 404
    status = alice_client.get(reverse("projects:dataset_status", args=[dataset.pk]))
    assert status["HX-Refresh"] == "true"
    detail = alice_client.get(reverse("projects:detail", args=[project.pk])).content.decode()
    assert reverse("projects:dataset_detail", args=[dataset.pk]) in detail and "Upload data" in detail


def test_it_shows_why_a_dataset_failed(storage, project, alice_client, tmp_path, no_broker):
    files = split_files(classes=("cats",), train=3, validation=1)
    alice_client.post(reverse("projects:dataset_upload_zip", args=[project.pk]), {"archive": _zip(tmp_path, files)})
    dataset = dataset_ingest(dataset_id=Dataset.objects.get().pk)
    body = alice_client.get(reverse("projects:dataset_detail", args=[dataset.pk])).content.decode()
    assert "a dataset needs at least 2 classes; found 1 (&#x27;cats&#x27;)" in body


def test_it_answers_404_to_bob_on_every_dataset_url_of_alice(
    storage, project, alice_client, bob_client, tmp_path, no_broker
):
    dataset = _ready_dataset(tmp_path, alice_client, project)
    klass = dataset.classes.first()
    session = alice_client.post(reverse("projects:folder_upload_start", args=[project.pk])).json()
    sid = uuid.UUID(session["session"])
    gets = [
        reverse("projects:dataset_upload", args=[project.pk]),
        reverse("projects:dataset_detail", args=[dataset.pk]),
        reverse("projects:dataset_status", args=[dataset.pk]),
        reverse("projects:dataset_thumbnail", args=[dataset.pk, klass.pk, 0]),
    ]
    posts = [
        reverse("projects:dataset_upload_zip", args=[project.pk]),
        reverse("projects:folder_upload_start", args=[project.pk]),
        reverse("projects:folder_upload_files", args=[project.pk, sid]),
        reverse("projects:folder_upload_finish", args=[project.pk, sid]),
    ]
    for url in gets:
        assert bob_client.get(url).status_code == 404, url
    for url in posts:
        assert bob_client.post(url, {"archive": _zip(tmp_path), "paths": ["a/b.jpg"]}).status_code == 404, url
    assert Dataset.objects.count() == 1 and UploadSession.objects.count() == 1


def test_it_lists_datasets_in_the_admin_without_n_plus_one(storage, project, staff, tmp_path, alice_client, no_broker):
    from django.test import Client

    _ready_dataset(tmp_path, alice_client, project)
    admin = Client()
    staff.is_superuser = True
    staff.save()
    admin.force_login(staff)
    for name in ["project", "dataset", "datasetclass", "uploadsession"]:
        assert admin.get(reverse(f"admin:projects_{name}_changelist")).status_code == 200, name
    with CaptureQueriesContext(connection) as one:
        admin.get(reverse("admin:projects_dataset_changelist"))
    _ready_dataset(tmp_path, alice_client, project)
    _ready_dataset(tmp_path, alice_client, project)
    with CaptureQueriesContext(connection) as three:
        admin.get(reverse("admin:projects_dataset_changelist"))
    assert len(three) == len(one), "the changelist must not query once per row"
    dataset = Dataset.objects.first()
    change = admin.get(reverse("admin:projects_dataset_change", args=[dataset.pk]))
    assert change.status_code == 200 and dataset.content_hash.encode() in change.content


@pytest.mark.django_db(transaction=True)
def test_it_tells_the_user_when_the_task_queue_is_down(storage, project, alice_client, tmp_path, broker_down):
    response = alice_client.post(
        reverse("projects:dataset_upload_zip", args=[project.pk]), {"archive": _zip(tmp_path)}, **XHR
    )
    assert response.status_code == 503
    message = response.json()["error"]
    assert message == (
        "Ingest could not start: the job queue (Redis) could not be reached. "
        "The upload was not kept: upload it again once the queue is back."
    )
    dataset = Dataset.objects.get()
    assert dataset.status == "failed" and dataset.error == message
    assert files_under(storage) == []
