import re

import pytest

from tests.predictions.conftest import make_dataset, make_model
from webapp.experiments.models import Experiment, TrainingJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(alice_project):
    return make_dataset(alice_project)


def _create(client, project, **body):
    return client.post(f"/api/v1/projects/{project.pk}/experiments/", body, format="json")


def test_it_creates_an_experiment_and_queues_its_job(alice_api, alice_project, dataset):
    response = _create(
        alice_api, alice_project, dataset=dataset.pk, mode="bottleneck", weights="none", epochs=3, name="first",
        head={"units": 32}, notes="try",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "first" and body["notes"] == "try" and body["status"] == "queued"
    assert body["config"]["epochs"] == 3 and body["config"]["head"]["units"] == 32
    assert body["history"] == [] and body["evaluation"] is None and body["model"] is None
    assert TrainingJob.objects.get(pk=body["job"]).experiment_id == body["id"]


def test_it_names_an_unknown_config_key(alice_api, alice_project, dataset):
    response = _create(alice_api, alice_project, dataset=dataset.pk, mode="finetune", augmentation={"rotaton_range": 5})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "augmentation.rotaton_range"
    assert "augmentation.rotaton_range: unknown option" in response.json()["detail"]


def test_it_names_an_out_of_range_value(alice_api, alice_project, dataset):
    response = _create(alice_api, alice_project, dataset=dataset.pk, mode="bottleneck", epochs=0)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "epochs"
    assert not Experiment.objects.exists()


def test_it_refuses_settings_whose_estimated_memory_is_over_the_training_budget(
    alice_api, alice_project, dataset, settings
):
    # The break-it reproduction: image size 1024 with batch 1024 and 8192 head units.
    settings.TL_TRAINING_MEMORY_BYTES = 16 * 1024**3
    response = _create(
        alice_api, alice_project, dataset=dataset.pk, mode="bottleneck", weights="none",
        image_size=1024, batch_size=1024, head={"units": 8192},
    )  # fmt: skip
    assert response.status_code == 400
    body = response.json()
    assert body["errors"][0]["field"] == "head.units"
    # 82.1 GiB for the settings alone (tests/ml/test_config.py), plus this dataset's cached features.
    assert re.search(r"this experiment would need about 82\.\d GiB of memory to train", body["detail"])
    assert "head weights 64.0 GiB, feature extraction 16.0 GiB" in body["detail"]
    assert "budget of 16.0 GiB (TL_TRAINING_MEMORY_BYTES)" in body["detail"]
    assert not Experiment.objects.exists() and not TrainingJob.objects.exists()
    # The same settings fit a worker whose budget is larger.
    settings.TL_TRAINING_MEMORY_BYTES = 128 * 1024**3
    fits = _create(
        alice_api, alice_project, dataset=dataset.pk, mode="bottleneck", weights="none",
        image_size=1024, batch_size=1024, head={"units": 8192},
    )  # fmt: skip
    assert fits.status_code == 201, fits.content


def test_it_names_the_dataset_when_it_is_not_this_projects(alice_api, alice_project, bob_project):
    other = make_dataset(bob_project)
    response = _create(alice_api, alice_project, dataset=other.pk, mode="bottleneck")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "dataset"
    missing = _create(alice_api, alice_project, mode="bottleneck")
    assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "dataset"


def test_it_shows_history_evaluation_and_model(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model)
    job = model.job
    job.metrics.create(epoch=1, loss=0.9, accuracy=0.5, val_loss=0.8, val_accuracy=0.6)
    response = alice_api.get(f"/api/v1/experiments/{model.experiment_id}/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "succeeded" and body["progress"] == 1.0
    assert body["history"] == [{"epoch": 1, "loss": 0.9, "accuracy": 0.5, "val_loss": 0.8, "val_accuracy": 0.6}]
    assert body["evaluation"]["accuracy"] == 1.0 and body["evaluation"]["labels"] == ["circle", "square", "triangle"]
    assert body["model"]["id"] == model.pk


def test_it_lists_a_projects_experiments(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model)
    response = alice_api.get(f"/api/v1/projects/{alice_project.pk}/experiments/")
    assert response.status_code == 200
    assert [(e["id"], e["status"]) for e in response.json()["results"]] == [(model.experiment_id, "succeeded")]


def test_it_cancels_a_queued_job_and_retries_it(alice_api, alice_project, dataset):
    experiment_id = _create(alice_api, alice_project, dataset=dataset.pk, mode="bottleneck").json()["id"]
    cancelled = alice_api.post(f"/api/v1/experiments/{experiment_id}/cancel/")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = alice_api.post(f"/api/v1/experiments/{experiment_id}/cancel/")
    assert again.status_code == 409
    assert "already ended (cancelled)" in again.json()["detail"]
    retried = alice_api.post(f"/api/v1/experiments/{experiment_id}/retry/")
    assert retried.status_code == 201
    assert retried.json()["status"] == "queued" and retried.json()["job"] != cancelled.json()["job"]


def test_it_refuses_to_retry_a_succeeded_job(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model)
    response = alice_api.post(f"/api/v1/experiments/{model.experiment_id}/retry/")
    assert response.status_code == 409
    assert "Only a failed or cancelled job can be retried" in response.json()["detail"]


def test_it_hides_another_users_experiments(alice_api, bob_project, tiny_model):
    model = make_model(bob_project, tiny_model)
    for url in (
        f"/api/v1/experiments/{model.experiment_id}/",
        f"/api/v1/projects/{bob_project.pk}/experiments/",
    ):
        assert alice_api.get(url).status_code == 404
    for action in ("cancel", "retry"):
        assert alice_api.post(f"/api/v1/experiments/{model.experiment_id}/{action}/").status_code == 404
    assert _create(alice_api, bob_project, dataset=model.experiment.dataset_id, mode="bottleneck").status_code == 404
