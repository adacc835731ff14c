import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.predictions.conftest import api_client
from tests.projects.conftest import files_under, record_sent_tasks
from tests.projects.images import PLANTED, SUFFIX, leaky_files, make_zip, split_files
from webapp.core.errors import Conflict
from webapp.projects.datasets import dataset_create_from_archive, dataset_ingest, upload_dir
from webapp.projects.without_leaks import dataset_create_without_leaks


def _ready(project, alice, tmp_path, monkeypatch, files, name="leaky.zip"):
    record_sent_tasks(monkeypatch)
    upload = SimpleUploadedFile(name, make_zip(tmp_path / name, files).read_bytes(), content_type="application/zip")
    dataset = dataset_create_from_archive(project=project, uploaded_file=upload, user=alice)
    dataset = dataset_ingest(dataset_id=dataset.pk)
    assert dataset.status == "ready", dataset.error
    return dataset


@pytest.fixture
def leaky(storage, project, alice, tmp_path, monkeypatch):
    return _ready(project, alice, tmp_path, monkeypatch, leaky_files())


def _copy_of(kind: str) -> str:
    return f"{'validation' if PLANTED.index(kind) % 2 == 0 else 'test'}/cats/{kind}.{SUFFIX.get(kind, 'png')}"


def test_the_report_counts_near_copies_as_leakage(leaky):
    totals = leaky.report["totals"]
    assert (totals["leaked_images"], totals["near_leaked_images"], totals["leaked_copies"]) == (5, 5, 5)
    assert {g["kind"] for g in leaky.report["leakage"]["items"]} == {"near"}


def test_it_makes_a_new_version_without_leaked_images_keeping_the_train_copies(
    leaky, alice, storage, monkeypatch, django_capture_on_commit_callbacks
):
    sent = record_sent_tasks(monkeypatch)
    with django_capture_on_commit_callbacks(execute=True):
        new = dataset_create_without_leaks(dataset=leaky, user=alice)
    assert (new.version, new.status, new.original_name) == (2, "processing", "v1 without 5 leaked images")
    assert [m["args"] for m in sent] == [[new.pk]]
    new = dataset_ingest(dataset_id=new.pk)
    assert new.status == "ready", new.error
    assert new.report["lineage"] == {
        "dataset": leaky.pk, "version": 1, "removed": 5, "note": "made from v1 without 5 leaked images"
    }  # fmt: skip
    assert new.report["leakage"]["total"] == 0 and new.report["totals"]["leaked_copies"] == 0
    assert sorted(new.report["without_leaks"]["items"]) == sorted(_copy_of(kind) for kind in PLANTED)
    stored = files_under(storage / "datasets" / str(new.pk))
    assert all(f"train/cats/original-{kind}.png" in stored for kind in PLANTED)
    assert not any(_copy_of(kind) in stored for kind in PLANTED)
    assert (new.report["totals"]["validation"], new.report["totals"]["test"]) == (6, 6)  # the distinct ones stay
    assert new.report["test_split"]["source"] == "uploaded"
    # The source version is untouched, and the new one's upload (links to its files) is gone.
    assert _copy_of("q60") in files_under(storage / "datasets" / str(leaky.pk))
    assert not upload_dir(new.pk).exists()


def test_it_refuses_a_version_without_leaks_of_a_clean_or_unready_version(
    storage, project, alice, tmp_path, monkeypatch
):
    clean = _ready(project, alice, tmp_path, monkeypatch, split_files(train=3, validation=1), name="clean.zip")
    with pytest.raises(Conflict, match="has no leaked images"):
        dataset_create_without_leaks(dataset=clean, user=alice)
    clean.status = "processing"
    with pytest.raises(Conflict, match="is processing"):
        dataset_create_without_leaks(dataset=clean, user=alice)
    clean.status, clean.report = "ready", {"totals": {"leaked_images": 1}}  # checked before near duplicates
    with pytest.raises(Conflict, match="upload it again"):
        dataset_create_without_leaks(dataset=clean, user=alice)
    assert project.datasets.count() == 1


def test_the_report_page_shows_the_groups_with_thumbnails_and_the_button(leaky, alice_client, bob_client):
    page = alice_client.get(reverse("projects:dataset_detail", args=[leaky.pk])).content.decode()
    assert "Leakage: one picture in more than one split (5)" in page
    assert "near (distance" in page and "New version without the 5 leaked images" in page
    thumb = leaky.report["group_thumbnails"][_copy_of("crop4")]
    url = reverse("projects:dataset_group_thumbnail", args=[leaky.pk, thumb])
    assert f'src="{url}"' in page
    response = alice_client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert alice_client.get(reverse("projects:dataset_group_thumbnail", args=[leaky.pk, 99])).status_code == 404
    assert bob_client.get(url).status_code == 404


def test_the_button_makes_the_new_version_and_shows_it(leaky, alice_client, bob_client, monkeypatch):
    record_sent_tasks(monkeypatch)
    url = reverse("projects:dataset_without_leaks", args=[leaky.pk])
    assert bob_client.post(url).status_code == 404
    response = alice_client.post(url)
    new = leaky.project.datasets.get(version=2)
    assert response.status_code == 302 and response["Location"] == reverse("projects:dataset_detail", args=[new.pk])
    dataset_ingest(dataset_id=new.pk)
    page = alice_client.get(response["Location"]).content.decode()
    assert "This version was made from v1 without 5 leaked images" in page
    assert "New version without" not in page


def test_the_api_answers_202_with_the_new_version(leaky, alice, bob, monkeypatch):
    record_sent_tasks(monkeypatch)
    url = f"/api/v1/datasets/{leaky.pk}/without-leaks/"
    assert api_client(bob).post(url).status_code == 404
    response = api_client(alice).post(url)
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["version"], body["status"], body["original_name"]) == (2, "processing", "v1 without 5 leaked images")
    again = api_client(alice).post(f"/api/v1/datasets/{body['id']}/without-leaks/")
    assert again.status_code == 409 and "is processing" in again.json()["detail"]
