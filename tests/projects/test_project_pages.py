from django.urls import reverse

from tests.experiments.factories import make_dataset, make_project
from webapp.core import storage
from webapp.experiments.models import Experiment, TrainedModel, TrainingJob
from webapp.projects.models import Dataset, Project, UploadSession


def _project_with_everything(owner):
    project = make_project(owner)
    dataset = make_dataset(project)
    experiment = Experiment.objects.create(
        project=project, dataset=dataset, name="e", mode="bottleneck", backbone="vgg16", config={"mode": "bottleneck"}
    )
    job = TrainingJob.objects.create(experiment=experiment, status=TrainingJob.Status.SUCCEEDED)
    model_dir = storage.models_root() / "77"
    model_dir.mkdir(parents=True)
    (model_dir / "model.keras").write_bytes(b"weights")
    TrainedModel.objects.create(
        project=project, experiment=experiment, job=job, version=1, path=storage.key_of(model_dir), size_bytes=7,
        checksum="0" * 64, class_names=["a", "b"], image_size=[32, 32], backbone="vgg16", published=True,
    )  # fmt: skip
    session = UploadSession.objects.create(project=project, created_by=owner)
    session_dir = storage.uploads_root() / f"session-{session.pk}"
    session_dir.mkdir(parents=True)
    (session_dir / "a.jpg").write_bytes(b"x")
    return project, [storage.dataset_dir(dataset.pk), model_dir, session_dir]


def test_it_creates_edits_and_deletes_a_project_with_its_files(client, alice):
    client.force_login(alice)
    response = client.post(reverse("projects:create"), {"name": "Cats", "description": "cats vs dogs"})
    project = Project.objects.get(owner=alice, name="Cats")
    assert response.status_code == 302
    client.post(reverse("projects:edit", args=[project.pk]), {"name": "Cats and dogs", "description": ""})
    project.refresh_from_db()
    assert project.name == "Cats and dogs"

    project, folders = _project_with_everything(alice)
    assert all(folder.exists() for folder in folders)
    page = client.get(reverse("projects:delete", args=[project.pk])).content.decode()
    assert "cannot be undone" in page
    response = client.post(reverse("projects:delete", args=[project.pk]))
    assert response.status_code == 302
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not Dataset.objects.filter(project_id=project.pk).exists()
    assert not TrainedModel.objects.filter(project_id=project.pk).exists()
    assert not any(folder.exists() for folder in folders)


def test_it_names_a_duplicate_project_beside_its_field(client, alice):
    make_project(alice, name="Cats")
    client.force_login(alice)
    page = client.post(reverse("projects:create"), {"name": "Cats"}).content.decode()
    assert 'id="id_name_error"' in page and "already have a project named" in page


def test_another_users_project_pages_are_not_found(client, alice, bob):
    project, folders = _project_with_everything(alice)
    client.force_login(bob)
    for name in ("detail", "edit", "delete"):
        assert client.get(reverse(f"projects:{name}", args=[project.pk])).status_code == 404
    assert client.post(reverse("projects:delete", args=[project.pk])).status_code == 404
    assert Project.objects.filter(pk=project.pk).exists() and all(folder.exists() for folder in folders)
