import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from tests.projects.conftest import files_under, record_sent_tasks
from tests.projects.images import make_zip, split_files, write_tree
from webapp.core.errors import ServiceError, Unavailable
from webapp.projects.datasets import QUEUE_DOWN, dataset_create_from_archive, dataset_ingest, upload_dir
from webapp.projects.models import Dataset


def _zip_upload(tmp_path, files=None, name="cats.zip"):
    path = make_zip(tmp_path / name, files if files is not None else split_files("data/", train=4, validation=2))
    return SimpleUploadedFile(name, path.read_bytes(), content_type="application/zip")


def _create(project, alice, upload, monkeypatch, sent):
    record_sent_tasks(monkeypatch, sent)
    return dataset_create_from_archive(project=project, uploaded_file=upload, user=alice)


def test_it_stores_the_zip_and_enqueues_ingest_on_commit(
    storage, project, alice, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        dataset = _create(project, alice, _zip_upload(tmp_path), monkeypatch, sent)
        assert sent == [], "the task must not be sent before the row is committed"
    assert len(callbacks) == 1
    dataset.refresh_from_db()
    assert (dataset.version, dataset.status, dataset.source) == (1, "processing", "zip")
    assert sent == [
        {
            "name": "workers.tasks.ingest_dataset",
            "args": [dataset.pk],
            "task_id": dataset.task_id,
            "ignore_result": True,
        }
    ]
    assert (upload_dir(dataset.pk) / "archive.zip").read_bytes() == (tmp_path / "cats.zip").read_bytes()


def test_it_ingests_a_stored_zip_to_ready(storage, project, alice, tmp_path, monkeypatch):
    first = _create(project, alice, _zip_upload(tmp_path), monkeypatch, [])
    dataset = dataset_ingest(dataset_id=first.pk)
    assert dataset.status == "ready", dataset.error
    assert dataset.progress == 1.0 and len(dataset.content_hash) == 64 and dataset.finished_at
    assert list(dataset.classes.values_list("name", "train_count", "validation_count")) == [
        ("cats", 4, 2),
        ("dogs", 4, 2),
    ]
    assert dataset.stats["images"] == 12
    stored = files_under(storage / "datasets" / str(dataset.pk))
    assert "train/cats/cats0.jpg" in stored and "validation/dogs/dogs1.jpg" in stored and "thumbs/cats/0.jpg" in stored
    assert not upload_dir(dataset.pk).exists()
    assert files_under(storage / ".staging") == []
    second = _create(project, alice, _zip_upload(tmp_path), monkeypatch, [])
    assert second.version == 2
    assert dataset_ingest(dataset_id=second.pk).content_hash == dataset.content_hash


def test_it_leaves_no_files_when_ingest_fails(storage, project, alice, tmp_path, monkeypatch):
    files = split_files(classes=("cats", "dogs", "fish"), train=3, validation=1)
    files = {k: v for k, v in files.items() if not k.startswith("validation/fish/")}
    dataset = _create(project, alice, _zip_upload(tmp_path, files), monkeypatch, [])
    dataset = dataset_ingest(dataset_id=dataset.pk)
    assert dataset.status == "failed"
    assert "only in train: 'fish'" in dataset.error
    assert files_under(storage) == []
    assert dataset.classes.count() == 0 and dataset.content_hash == ""


def test_it_fails_the_whole_upload_on_an_unsafe_entry(storage, project, alice, tmp_path, monkeypatch):
    files = split_files(train=2, validation=1)
    files["../../outside.jpg"] = files["train/cats/cats0.jpg"]
    dataset = dataset_ingest(dataset_id=_create(project, alice, _zip_upload(tmp_path, files), monkeypatch, []).pk)
    assert dataset.status == "failed" and "'../../outside.jpg'" in dataset.error
    assert files_under(storage) == [] and not (storage.parent / "outside.jpg").exists()


def test_it_ignores_a_second_delivery_of_the_task(storage, project, alice, tmp_path, monkeypatch):
    dataset = dataset_ingest(dataset_id=_create(project, alice, _zip_upload(tmp_path), monkeypatch, []).pk)
    assert dataset_ingest(dataset_id=dataset.pk).status == "ready"
    assert dataset.classes.count() == 2


def test_it_refuses_a_file_that_is_not_a_zip(storage, project, alice, monkeypatch):
    upload = SimpleUploadedFile("photos.zip", b"GIF89a not a zip", content_type="application/zip")
    with pytest.raises(ServiceError, match="photos.zip is not a zip archive"):
        _create(project, alice, upload, monkeypatch, [])
    assert Dataset.objects.count() == 0 and files_under(storage) == []


def test_it_refuses_an_archive_over_the_upload_limit(storage, project, alice, tmp_path, monkeypatch, settings):
    settings.TL_MAX_UPLOAD_BYTES = 100
    with pytest.raises(ServiceError, match="cats.zip is .* bytes; the upload limit is 100 bytes"):
        _create(project, alice, _zip_upload(tmp_path), monkeypatch, [])
    assert Dataset.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_it_fails_the_dataset_when_the_broker_is_down(storage, project, alice, tmp_path, broker_down):
    with pytest.raises(Unavailable) as caught:
        dataset_create_from_archive(project=project, uploaded_file=_zip_upload(tmp_path), user=alice)
    assert QUEUE_DOWN in caught.value.message and caught.value.status_code == 503
    dataset = Dataset.objects.get()
    assert (dataset.status, dataset.error) == ("failed", caught.value.message)
    assert files_under(storage) == []


def test_it_imports_a_folder_with_the_management_command(storage, project, alice, tmp_path, capsys):
    source = write_tree(tmp_path / "seed", split_files("data/", train=3, validation=1))
    call_command("import_dataset", str(project.pk), str(source / "data"))
    out = capsys.readouterr().out
    assert "cats: 3 train, 1 validation" in out and "is ready" in out
    dataset = Dataset.objects.get(project=project)
    assert (dataset.status, dataset.source, dataset.created_by) == ("ready", "import", alice)
    assert (source / "data" / "train" / "cats" / "cats0.jpg").exists(), "the source folder is left alone"


def test_it_imports_a_zip_by_project_name_and_owner(storage, project, alice, tmp_path, capsys):
    archive = make_zip(tmp_path / "seed.zip", split_files(train=2, validation=1))
    call_command("import_dataset", "Cats and dogs", str(archive), owner="alice")
    assert Dataset.objects.get(project=project).status == "ready"


def test_it_exits_non_zero_when_the_import_fails(storage, project, tmp_path, capsys):
    source = write_tree(tmp_path / "one", split_files(classes=("cats",), train=2, validation=1))
    with pytest.raises(CommandError, match="at least 2 classes"):
        call_command("import_dataset", str(project.pk), str(source))
    assert Dataset.objects.get(project=project).status == "failed"
    with pytest.raises(CommandError, match="No project 'nope'"):
        call_command("import_dataset", "nope", str(source))
    with pytest.raises(CommandError, match="does not exist"):
        call_command("import_dataset", str(project.pk), str(tmp_path / "missing"))
