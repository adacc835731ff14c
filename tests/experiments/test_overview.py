"""The project page and list say where a project stands and what to do next."""

import pytest
from django.urls import reverse

from webapp.experiments.models import Experiment, TrainingJob
from webapp.experiments.overview import project_overview
from webapp.projects.models import Dataset

from .factories import make_dataset, make_project
from .test_thresholds import make_trained_model


@pytest.fixture
def project(alice):
    return make_project(alice)


def evaluated(model, accuracy, split="test", n=40):
    model.job.result = {"evaluation": {"accuracy": accuracy, "split": split, "n": n}}
    model.job.save(update_fields=["result"])
    return model


def test_a_new_project_asks_for_data(project):
    step = project_overview(project)["next_step"]
    assert step.action == "Upload your images"
    assert step.url == reverse("projects:dataset_upload", args=[project.pk])


def test_each_stage_names_its_own_next_step(project):
    dataset = make_dataset(project, status=Dataset.Status.PROCESSING, n_train=1, n_val=1)
    assert project_overview(project)["next_step"].action == "See the upload"
    Dataset.objects.filter(pk=dataset.pk).update(status=Dataset.Status.READY)
    assert project_overview(project)["next_step"].action == "Start an experiment"
    experiment = Experiment.objects.create(
        project=project, dataset=dataset, name="First try", mode="bottleneck", backbone="vgg16", config={}
    )
    job = TrainingJob.objects.create(experiment=experiment, status=TrainingJob.Status.RUNNING, progress=0.4)
    overview = project_overview(project)
    assert overview["active"] == [job]
    assert overview["next_step"].text == "First try is running; its page follows it live."
    TrainingJob.objects.filter(pk=job.pk).update(status=TrainingJob.Status.FAILED)
    assert project_overview(project)["next_step"].action == "See the experiments"
    evaluated(make_trained_model(project), 0.8)
    assert project_overview(project)["next_step"].action == "Choose a model to publish"


def test_it_names_the_published_model_and_the_best_experiment(client, alice, project):
    make_dataset(project, n_train=1, n_val=1)
    low = evaluated(make_trained_model(project, published=True), 0.75, n=40)
    high = evaluated(make_trained_model(project), 0.9, split="validation", n=20)
    Experiment.objects.filter(pk=high.experiment_id).update(name="Fine-tuned")
    overview = project_overview(project)
    assert overview["published"] == low
    assert overview["best"]["experiment"].name == "Fine-tuned" and overview["best"]["accuracy"] == 0.9
    client.force_login(alice)
    page = client.get(reverse("projects:detail", args=[project.pk])).content.decode()
    assert "v1</a> · Shapes · 75.0% on 40 test images" in page
    assert ">Fine-tuned</a> · 90.0% on 20 validation images" in page
    assert "Model v1 answers on this project&#x27;s prediction endpoint." in page
    listing = client.get(reverse("projects:list")).content.decode()
    assert "<th>Published model</th>" in listing and "v1 · 75.0%" in listing
