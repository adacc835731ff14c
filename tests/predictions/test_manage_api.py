"""PATCH and DELETE of experiments and models, and a project's dataset versions, through the API."""

import pytest

from tests.experiments.factories import make_dataset, make_run
from webapp.core import storage
from webapp.experiments.models import Experiment, TrainedModel, TrainingJob

pytestmark = pytest.mark.django_db

Status = TrainingJob.Status


@pytest.fixture(autouse=True)
def private_storage(settings, tmp_path):
    settings.TL_STORAGE_ROOT = tmp_path / "storage"


@pytest.fixture
def dataset(alice_project):
    return make_dataset(alice_project, n_train=2, n_val=1)


def test_it_renames_an_experiment_and_sets_its_notes(alice_api, alice_project, dataset):
    experiment = make_run(alice_project, dataset)
    url = f"/api/v1/experiments/{experiment.pk}/"
    response = alice_api.patch(url, {"name": "Head only", "notes": "baseline"}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["name"], response.json()["notes"]) == ("Head only", "baseline")
    response = alice_api.patch(url, {"notes": ""}, format="json")
    assert (response.json()["name"], response.json()["notes"]) == ("Head only", "")


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        ({"name": ""}, "name", "name: This field may not be blank."),
        ({"name": "x" * 121}, "name", "name: Ensure this field has no more than 120 characters."),
        ({"config": {"epochs": 3}}, "config", "unknown field 'config'"),
    ],
)
def test_it_refuses_a_bad_patch_naming_the_field(alice_api, alice_project, dataset, body, field, detail):
    experiment = make_run(alice_project, dataset)
    response = alice_api.patch(f"/api/v1/experiments/{experiment.pk}/", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field and detail in response.json()["detail"]
    experiment.refresh_from_db()
    assert experiment.name == "Bottleneck"


def test_it_deletes_an_experiment_only_once_nothing_runs(
    alice_api, alice_project, dataset, django_capture_on_commit_callbacks
):
    experiment = make_run(alice_project, dataset, status=Status.RUNNING)
    url = f"/api/v1/experiments/{experiment.pk}/"
    response = alice_api.delete(url)
    assert response.status_code == 409
    assert (
        response.json()["detail"] == "Experiment 'Bottleneck' cannot be deleted: its run is running; cancel it first."
    )
    job = experiment.jobs.get()
    experiment.jobs.update(status=Status.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_api.delete(url).status_code == 204
    assert not Experiment.objects.filter(pk=experiment.pk).exists()
    assert not storage.checkpoint_dir(job.pk).exists()
    assert alice_api.delete(url).status_code == 404


def test_it_deletes_a_model_unless_it_is_published(
    alice_api, alice_project, dataset, django_capture_on_commit_callbacks
):
    model = make_run(alice_project, dataset).models.get()
    TrainedModel.objects.filter(pk=model.pk).update(published=True)
    url = f"/api/v1/models/{model.pk}/"
    response = alice_api.delete(url)
    assert response.status_code == 409 and "unpublish it or publish another first" in response.json()["detail"]
    TrainedModel.objects.filter(pk=model.pk).update(published=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_api.delete(url).status_code == 204
    assert not storage.model_dir(model.pk).exists()


def test_another_users_experiments_models_and_datasets_answer_404(bob_api, alice_project, dataset):
    experiment = make_run(alice_project, dataset)
    model = experiment.models.get()
    assert bob_api.patch(f"/api/v1/experiments/{experiment.pk}/", {"name": "mine"}, format="json").status_code == 404
    assert bob_api.delete(f"/api/v1/experiments/{experiment.pk}/").status_code == 404
    assert bob_api.delete(f"/api/v1/models/{model.pk}/").status_code == 404
    assert bob_api.get(f"/api/v1/projects/{alice_project.pk}/datasets/").status_code == 404
    experiment.refresh_from_db()
    assert experiment.name == "Bottleneck" and TrainedModel.objects.filter(pk=model.pk).exists()


def test_it_lists_a_projects_dataset_versions_with_their_counts(alice_api, alice_project, dataset):
    failed = make_dataset(alice_project, n_train=0, n_val=0, status="failed")
    make_run(alice_project, dataset)
    make_run(alice_project, dataset, name="Again", model=False)
    response = alice_api.get(f"/api/v1/projects/{alice_project.pk}/datasets/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    newest, oldest = body["results"]
    assert (newest["id"], newest["version"], newest["status"]) == (failed.pk, 2, "failed")
    assert (oldest["id"], oldest["status"], oldest["class_count"]) == (dataset.pk, "ready", 2)
    assert (oldest["train_count"], oldest["validation_count"], oldest["experiment_count"]) == (4, 2, 2)
    assert newest["experiment_count"] == 0 and oldest["created_at"]
