import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.predictions.conftest import make_dataset, shape_png
from webapp.projects.datasets import upload_dir
from webapp.projects.models import Dataset

pytestmark = pytest.mark.django_db


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in ("circle", "square"):
            for i in range(3):
                archive.writestr(f"{name}/{i}.png", shape_png(name, i))
    return buffer.getvalue()


def test_it_accepts_an_archive_and_queues_its_ingest(alice_api, alice_project, django_capture_on_commit_callbacks):
    data = _zip()
    upload = SimpleUploadedFile("shapes.zip", data, content_type="application/zip")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alice_api.post(f"/api/v1/projects/{alice_project.pk}/datasets/", {"archive": upload})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "processing" and body["version"] == 1 and body["original_name"] == "shapes.zip"
    dataset = Dataset.objects.get(pk=body["id"])
    assert dataset.task_id and len(callbacks) == 1
    assert (upload_dir(dataset.pk) / "archive.zip").read_bytes() == data


def test_it_names_the_archive_field_when_it_is_not_a_zip(alice_api, alice_project):
    upload = SimpleUploadedFile("shapes.zip", b"not a zip at all", content_type="application/zip")
    response = alice_api.post(f"/api/v1/projects/{alice_project.pk}/datasets/", {"archive": upload})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "archive"
    assert "not a zip archive" in response.json()["detail"]


def test_it_asks_for_the_archive_field(alice_api, alice_project):
    upload = SimpleUploadedFile("shapes.zip", _zip(), content_type="application/zip")
    url = f"/api/v1/projects/{alice_project.pk}/datasets/"
    response = alice_api.post(url, {"file": upload})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "file"
    assert "unknown field 'file'" in response.json()["detail"]
    missing = alice_api.post(url, {}, format="multipart")
    assert missing.json()["detail"] == "archive: No file was submitted."
    assert not Dataset.objects.exists()


def test_json_is_a_sample_request_and_an_archive_sent_as_json_is_refused_by_name(alice_api, alice_project):
    # JSON asks for a Keras sample ({"sample", "per_class"}); an archive only comes as multipart.
    response = alice_api.post(f"/api/v1/projects/{alice_project.pk}/datasets/", {"archive": "x"}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "archive: unknown field 'archive'; expected one of sample, per_class"
    response = alice_api.post(f"/api/v1/projects/{alice_project.pk}/datasets/", "x", content_type="text/plain")
    assert response.status_code == 415


def test_it_shows_a_dataset_with_its_classes(alice_api, alice_project):
    dataset = make_dataset(alice_project)
    response = alice_api.get(f"/api/v1/datasets/{dataset.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["classes"][0] == {"name": "circle", "train_count": 16, "validation_count": 4, "test_count": 0}
    assert body["error"] == "" and body["report"] == {}


def test_it_hides_another_users_dataset_and_project(alice_api, bob_project):
    dataset = make_dataset(bob_project)
    assert alice_api.get(f"/api/v1/datasets/{dataset.pk}/").status_code == 404
    upload = SimpleUploadedFile("shapes.zip", _zip(), content_type="application/zip")
    assert alice_api.post(f"/api/v1/projects/{bob_project.pk}/datasets/", {"archive": upload}).status_code == 404
    assert bob_project.datasets.count() == 1


def test_an_upload_chooses_its_test_split_share(alice_api, alice_project, tmp_path, settings):
    import zipfile

    from tests.projects.images import class_files
    from webapp.projects.datasets import dataset_ingest
    from webapp.projects.models import Dataset

    settings.TL_STORAGE_ROOT = tmp_path / "storage"
    archive = tmp_path / "cats.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in class_files("", per_class=25).items():
            zf.writestr(name, data)
    with open(archive, "rb") as fh:
        response = alice_api.post(
            f"/api/v1/projects/{alice_project.pk}/datasets/", {"archive": fh, "test_fraction": 0.2}, format="multipart"
        )
    assert response.status_code == 202, response.content
    assert response.json()["test_fraction"] == 0.2
    dataset = dataset_ingest(dataset_id=response.json()["id"])
    assert dataset.status == Dataset.Status.READY, dataset.error
    assert dataset.report["test_split"]["source"] == "carved"
    body = alice_api.get(f"/api/v1/datasets/{dataset.pk}/").json()
    assert [(c["train_count"], c["validation_count"], c["test_count"]) for c in body["classes"]] == [(16, 5, 4)] * 2
    too_much = alice_api.post(
        f"/api/v1/projects/{alice_project.pk}/datasets/", {"archive": b"", "test_fraction": 0.9}, format="multipart"
    )
    assert too_much.status_code == 400
