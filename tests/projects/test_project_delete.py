"""Deleting a project leaves nothing of it anywhere under TL_STORAGE_ROOT, and nothing of anyone
else's is touched; work of the project still running ends quietly."""

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from tests.experiments.factories import BOTTLENECK, make_dataset, make_project
from tests.projects.conftest import files_under
from tests.projects.images import image_bytes, make_zip, split_files
from webapp.core import storage as store
from webapp.experiments import services as experiments
from webapp.experiments.models import Experiment, TrainedModel, TrainingJob
from webapp.predictions.serving import reset_model_cache
from webapp.projects import services
from webapp.projects.datasets import dataset_create_from_archive, dataset_ingest
from webapp.projects.models import Dataset, Project, UploadSession


def _snapshot(root) -> dict[str, str]:
    return {f: hashlib.sha256((root / f).read_bytes()).hexdigest() for f in files_under(root)}


def _all_rows() -> str:
    """Every row of the app's own models, as JSON."""
    from django.apps import apps
    from django.core import serializers

    models = [m for m in apps.get_models() if m.__module__.startswith("webapp.")]
    return "".join(serializers.serialize("json", m.objects.all()) for m in models)


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _bobs_project(bob) -> Project:
    """Another user's project with a file of every kind, written where the app writes them."""
    project = make_project(bob, "Bob's")
    dataset = make_dataset(project, seed=3)
    entry = store.features_dir(dataset.feature_hash) / ("e" * 64)
    entry.mkdir(parents=True)
    (entry / "train.npy").write_bytes(b"bob's features")
    experiment = Experiment.objects.create(
        project=project, dataset=dataset, name="b", mode="bottleneck", backbone="vgg16", config={}
    )
    job = TrainingJob.objects.create(experiment=experiment, status=TrainingJob.Status.SUCCEEDED)
    model = TrainedModel.objects.create(
        project=project, experiment=experiment, job=job, version=1, path="", size_bytes=1, checksum="0" * 64,
        class_names=["green", "red"], image_size=[32, 32], backbone="vgg16",
    )  # fmt: skip
    (store.model_dir(model.pk)).mkdir(parents=True)
    (store.model_dir(model.pk) / "model.keras").write_bytes(b"bob's weights")
    (store.predictions_dir(project.pk) / "2026-01-01").mkdir(parents=True)
    (store.predictions_dir(project.pk) / "2026-01-01" / "1-0.png").write_bytes(b"bob's image")
    return project


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_deleting_a_project_removes_every_file_it_owns_and_nothing_else(storage, alice, bob, tmp_path, clean_broker):
    reset_model_cache()  # a model of an earlier test may have had the same id
    _bobs_project(bob)
    bobs_files = _snapshot(storage)
    project = make_project(alice, "Shapes")
    api = _api(alice)

    # A dataset through the real upload and ingest...
    archive = make_zip(tmp_path / "shapes.zip", split_files(train=8, validation=3))
    upload = SimpleUploadedFile("shapes.zip", archive.read_bytes(), content_type="application/zip")
    dataset = dataset_create_from_archive(project=project, uploaded_file=upload, user=alice)
    dataset = dataset_ingest(dataset_id=dataset.pk)
    assert dataset.status == "ready", dataset.error
    # ...a model trained on it (its bottleneck features cached on the way)...
    experiment = experiments.experiment_create(
        project=project, dataset=dataset, config=dict(BOTTLENECK), name="e", user=alice, start=False
    )
    job = TrainingJob.objects.create(experiment=experiment)
    assert experiments.training_job_run(job_id=job.pk, worker_hostname="here") == "succeeded"
    model = TrainedModel.objects.get(job=job)
    experiments.trained_model_publish(model=model)
    # ...prediction images kept because the project opted in...
    api.patch(f"/api/v1/projects/{project.pk}/", {"store_predictions": True}, format="json")
    image = SimpleUploadedFile("probe.jpg", image_bytes(5), content_type="image/jpeg")
    response = api.post(f"/api/v1/projects/{project.pk}/predict/", {"image": [image]}, format="multipart")
    assert response.status_code == 200, response.content
    # ...a failed version whose upload is kept for a retry, and a folder upload never finished.
    failed = Dataset.objects.create(project=project, version=2, source="zip", status="failed")
    (store.dataset_upload_dir(failed.pk) / "files").mkdir(parents=True)
    (store.dataset_upload_dir(failed.pk) / "files" / "a.jpg").write_bytes(image_bytes(6))
    session = UploadSession.objects.create(project=project, created_by=alice)
    (store.upload_session_dir(session.pk)).mkdir(parents=True)
    (store.upload_session_dir(session.pk) / "b.jpg").write_bytes(image_bytes(7))
    owned = set(files_under(storage)) - set(bobs_files)
    for folder in (
        f"datasets/{dataset.pk}/",
        f"features/{dataset.content_hash}/",
        f"models/{model.pk}/",
        f"predictions/{project.pk}/",
        f"uploads/dataset-{failed.pk}/",
        f"uploads/session-{session.pk}/",
    ):
        assert any(f.startswith(folder) for f in owned), f"nothing was written under {folder}"

    # Rows hold keys relative to the root, never where the root is today (docs/architecture.md, "Storage layout").
    rows = _all_rows()
    assert str(storage) not in rows and str(storage.resolve()) not in rows, "a row stores an absolute path"

    assert api.delete(f"/api/v1/projects/{project.pk}/").status_code == 204

    assert _snapshot(storage) == bobs_files, "a file of the deleted project is left, or one of Bob's changed"
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not TrainingJob.objects.filter(pk=job.pk).exists()


def test_deleting_a_project_keeps_features_another_project_shares(storage, alice, bob):
    mine, theirs = make_project(alice), make_project(bob, "Bob's")
    shared = make_dataset(mine, seed=1)
    own = make_dataset(mine, seed=2)
    twin = make_dataset(theirs, seed=1)
    Dataset.objects.filter(pk=twin.pk).update(content_hash=shared.content_hash)
    for dataset in (shared, own):
        store.features_dir(dataset.feature_hash).mkdir(parents=True)
        (store.features_dir(dataset.feature_hash) / "x.npy").write_bytes(b"f")

    services.project_delete(project=mine)

    assert (store.features_dir(shared.feature_hash) / "x.npy").is_file()
    assert not store.features_dir(own.feature_hash).exists()
    assert files_under(storage) == sorted(
        [f"features/{shared.content_hash}/x.npy"]
        + [f"datasets/{twin.pk}/{f}" for f in files_under(store.dataset_dir(twin.pk))]
    )
