"""The pages that rename, delete and clone experiments and delete models (their services' rules are in
test_editing.py)."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from tests.experiments.factories import BOTTLENECK, make_dataset, make_project, make_run
from webapp.experiments import services
from webapp.experiments.models import Experiment, TrainedModel, TrainingJob

Status = TrainingJob.Status


@pytest.fixture
def project(alice):
    return make_project(alice)


@pytest.fixture
def dataset(project):
    return make_dataset(project, n_train=2, n_val=1)


def _messages(response) -> list[str]:
    """The messages waiting for the next page (those of earlier requests not yet shown included)."""
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_experiment_page_renames_and_shows_the_refusal_of_a_delete(client, alice, project, dataset):
    client.force_login(alice)
    experiment = make_run(project, dataset, status=Status.RUNNING)
    edit = reverse("experiments:edit", args=[project.pk, experiment.pk])
    response = client.post(edit, {"name": "Renamed", "notes": "first try"})
    assert response.status_code == 302 and _messages(response) == ["Experiment Renamed saved."]
    response = client.post(edit, {"name": " ", "notes": ""})
    assert _messages(response)[-1] == "An experiment needs a name."
    page = client.get(reverse("experiments:detail", args=[project.pk, experiment.pk])).content.decode()
    assert 'value="Renamed"' in page and "first try" in page
    assert f"/experiments/new/?clone={experiment.pk}" in page

    delete = reverse("experiments:delete", args=[project.pk, experiment.pk])
    confirm = client.get(delete).content.decode()
    assert "It cannot be deleted now: its run is running; cancel it first." in confirm
    assert "Delete Renamed</button>" not in confirm
    response = client.post(delete)
    assert response.url == reverse("experiments:detail", args=[project.pk, experiment.pk])
    assert _messages(response) == ["Experiment 'Renamed' cannot be deleted: its run is running; cancel it first."]

    experiment.jobs.update(status=Status.FAILED)
    confirm = client.get(delete).content.decode()
    assert "This deletes its 1 run with their curves and checkpoints. Its dataset stays." in confirm
    response = client.post(delete)
    assert response.url == reverse("experiments:list", args=[project.pk])
    assert not Experiment.objects.filter(pk=experiment.pk).exists()


def test_the_models_page_deletes_a_model_and_explains_a_refusal(client, alice, project, dataset):
    client.force_login(alice)
    model = make_run(project, dataset).models.get()
    delete = reverse("experiments:model_delete", args=[project.pk, model.pk])
    assert delete in client.get(reverse("experiments:models", args=[project.pk])).content.decode()
    TrainedModel.objects.filter(pk=model.pk).update(published=True)
    assert "It cannot be deleted now: it is published" in client.get(delete).content.decode()
    assert _messages(client.post(delete))[0].startswith("Model v1 cannot be deleted: it is published")
    TrainedModel.objects.filter(pk=model.pk).update(published=False)
    response = client.post(delete)
    assert _messages(response)[-1] == "Model v1, its files and exports were deleted."
    assert not TrainedModel.objects.filter(pk=model.pk).exists()


def test_others_cannot_rename_delete_or_clone(client, bob, project, dataset):
    client.force_login(bob)
    experiment = make_run(project, dataset)
    model = experiment.models.get()
    for url in (
        reverse("experiments:edit", args=[project.pk, experiment.pk]),
        reverse("experiments:delete", args=[project.pk, experiment.pk]),
        reverse("experiments:model_delete", args=[project.pk, model.pk]),
    ):
        assert client.post(url, {"name": "mine"}).status_code == 404
    assert client.get(reverse("experiments:create", args=[project.pk]) + f"?clone={experiment.pk}").status_code == 404
    experiment.refresh_from_db()
    assert experiment.name == "Bottleneck" and TrainedModel.objects.filter(pk=model.pk).exists()


def test_clone_with_changes_fills_the_form_from_the_experiment(client, alice, project, dataset):
    client.force_login(alice)
    config = {**BOTTLENECK, "optimizer": "sgd", "momentum": 0.8, "early_stopping": {"patience": 3}}
    source = services.experiment_create(
        project=project, dataset=dataset, config=config, name="Tuned head", notes="keep", start=False
    )
    url = reverse("experiments:create", args=[project.pk]) + f"?clone={source.pk}"
    response = client.get(url)
    form = response.context["form"]
    initial = {name: form[name].value() for name in form.fields}
    assert initial["name"] == "Tuned head (copy)" and initial["notes"] == "keep"
    assert (initial["optimizer"], initial["momentum"], initial["early_stopping_patience"]) == ("sgd", 0.8, 3)
    assert (initial["image_height"], initial["head_units"], initial["weights"]) == (32, 16, "none")
    assert initial["dataset"] == dataset.pk
    assert _messages(response) == ["The form holds the settings of Tuned head: change what you want and start it."]
    # Submitted with one change, the copy is a new experiment with that change and the rest alike.
    data = {k: v for k, v in initial.items() if v is not None and v is not False}  # as a browser sends it
    data["epochs"] = 5
    response = client.post(url, data)
    assert response.status_code == 302, response.context["form"].errors
    copy = project.experiments.exclude(pk=source.pk).get()
    assert copy.name == "Tuned head (copy)"
    assert copy.config == {**source.config, "epochs": 5}
    assert client.get(reverse("experiments:create", args=[project.pk]) + "?clone=999999").status_code == 404
