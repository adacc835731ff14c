"""Renaming and deleting experiments and models (webapp/experiments/editing.py): each refusal with its
message, and the files removed once the delete commits."""

import pytest

from tests.experiments.factories import add_export, make_dataset, make_project, make_run
from webapp.core import storage
from webapp.core.errors import Conflict, ServiceError
from webapp.experiments import editing
from webapp.experiments.models import EpochMetric, Experiment, TrainedModel, TrainingJob
from webapp.exports.models import ModelExport

Status = TrainingJob.Status


@pytest.fixture
def project(alice):
    return make_project(alice)


@pytest.fixture
def dataset(project):
    return make_dataset(project, n_train=2, n_val=1)


# --- rename and notes ----------------------------------------------------------------------------


def test_it_renames_an_experiment_and_replaces_its_notes(project, dataset):
    experiment = make_run(project, dataset)
    editing.experiment_update(experiment=experiment, name="  Head only ", notes="lr too high?")
    experiment.refresh_from_db()
    assert (experiment.name, experiment.notes) == ("Head only", "lr too high?")


@pytest.mark.parametrize(
    ("name", "message"),
    [("   ", "An experiment needs a name."), ("x" * 121, "The name is 121 characters long; at most 120 fit.")],
)
def test_it_refuses_a_blank_or_too_long_name_naming_the_field(project, dataset, name, message):
    experiment = make_run(project, dataset)
    with pytest.raises(ServiceError) as caught:
        editing.experiment_update(experiment=experiment, name=name)
    assert (caught.value.message, caught.value.field) == (message, "name")
    experiment.refresh_from_db()
    assert experiment.name == "Bottleneck"


# --- deleting an experiment ----------------------------------------------------------------------


def test_it_deletes_an_experiment_with_its_runs_models_exports_and_their_files_after_commit(
    project, dataset, django_capture_on_commit_callbacks
):
    experiment = make_run(project, dataset)
    model = experiment.models.get()
    export = add_export(model)
    job = experiment.jobs.get()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        editing.experiment_delete(experiment=experiment)
    # Rows are gone at once; files only once the delete commits.
    assert not Experiment.objects.filter(pk=experiment.pk).exists()
    assert not TrainingJob.objects.filter(pk=job.pk).exists()
    assert not EpochMetric.objects.filter(job_id=job.pk).exists()
    assert not TrainedModel.objects.filter(pk=model.pk).exists()
    assert not ModelExport.objects.filter(pk=export.pk).exists()
    assert storage.model_dir(model.pk).is_dir() and storage.checkpoint_dir(job.pk).is_dir()
    for callback in callbacks:
        callback()
    assert not storage.model_dir(model.pk).exists()
    assert not storage.checkpoint_dir(job.pk).exists()
    assert not storage.export_dir(export.pk).exists()
    assert dataset.experiments.count() == 0 and storage.dataset_dir(dataset.pk).is_dir()


@pytest.mark.parametrize(
    ("status", "cancel_requested", "reason"),
    [
        (Status.QUEUED, False, "its run is queued; cancel it first."),
        (Status.RUNNING, False, "its run is running; cancel it first."),
        (Status.RUNNING, True, "its run is stopping after a cancel; delete it once the run shows cancelled."),
    ],
)
def test_it_refuses_to_delete_an_experiment_while_a_run_is_active(project, dataset, status, cancel_requested, reason):
    experiment = make_run(project, dataset, status=status)
    experiment.jobs.update(cancel_requested=cancel_requested)
    with pytest.raises(Conflict) as caught:
        editing.experiment_delete(experiment=experiment)
    assert caught.value.message == f"Experiment 'Bottleneck' cannot be deleted: {reason}"
    assert Experiment.objects.filter(pk=experiment.pk).exists()


def test_it_refuses_to_delete_an_experiment_whose_model_is_published(project, dataset):
    experiment = make_run(project, dataset)
    experiment.models.update(published=True)
    with pytest.raises(Conflict) as caught:
        editing.experiment_delete(experiment=experiment)
    assert caught.value.message == (
        "Experiment 'Bottleneck' cannot be deleted: its model v1 is published (the project's endpoint serves it); "
        "unpublish it first."
    )
    assert storage.model_dir(experiment.models.get().pk).is_dir()


def test_it_refuses_to_delete_the_base_of_a_fine_tune_naming_the_fine_tune(project, dataset):
    base = make_run(project, dataset)
    finetune = make_run(project, dataset, name="Fine-tune block5", mode="finetune", base=base, status=Status.FAILED)
    with pytest.raises(Conflict) as caught:
        editing.experiment_delete(experiment=base)
    assert caught.value.message == (
        f"Experiment 'Bottleneck' cannot be deleted: fine-tune experiment 'Fine-tune block5' (#{finetune.pk}) "
        "starts from it; delete the fine-tune first."
    )
    editing.experiment_delete(experiment=finetune)
    editing.experiment_delete(experiment=base)
    assert not project.experiments.exists()


# --- deleting a model ----------------------------------------------------------------------------


def test_it_deletes_a_model_with_its_exports_and_files_keeping_its_run(
    project, dataset, django_capture_on_commit_callbacks
):
    experiment = make_run(project, dataset)
    model = experiment.models.get()
    export = add_export(model)
    with django_capture_on_commit_callbacks(execute=True):
        editing.trained_model_delete(model=model)
    assert not TrainedModel.objects.filter(pk=model.pk).exists()
    assert not storage.model_dir(model.pk).exists() and not storage.export_dir(export.pk).exists()
    job = experiment.jobs.get()
    assert job.status == Status.SUCCEEDED and job.metrics.count() == 1


def test_it_refuses_to_delete_a_published_model(project, dataset):
    model = make_run(project, dataset).models.get()
    TrainedModel.objects.filter(pk=model.pk).update(published=True)
    with pytest.raises(Conflict) as caught:
        editing.trained_model_delete(model=model)
    assert caught.value.message == (
        "Model v1 cannot be deleted: it is published (the project's endpoint serves it); "
        "unpublish it or publish another first."
    )
    assert storage.model_dir(model.pk).is_dir()


def test_it_refuses_to_delete_the_model_a_fine_tune_starts_from_but_not_an_older_one(
    project, dataset, django_capture_on_commit_callbacks
):
    base = make_run(project, dataset)
    older = base.models.get()
    # A second succeeded run of the base: the fine-tune now starts from its model, the newest.
    job = TrainingJob.objects.create(experiment=base, status=Status.SUCCEEDED)
    newest = TrainedModel.objects.create(
        project=project, experiment=base, job=job, version=2, path="models/x", size_bytes=1, checksum="0" * 64,
        class_names=["green", "red"], image_size=[32, 32], backbone="vgg16",
    )  # fmt: skip
    finetune = make_run(project, dataset, name="Fine-tune", mode="finetune", base=base, status=Status.FAILED)
    with pytest.raises(Conflict) as caught:
        editing.trained_model_delete(model=newest)
    assert caught.value.message == (
        f"Model v2 cannot be deleted: fine-tune experiment 'Fine-tune' (#{finetune.pk}) starts from it "
        "(a run or retry loads it); delete the fine-tune first."
    )
    with django_capture_on_commit_callbacks(execute=True):
        editing.trained_model_delete(model=older)
    assert list(base.models.values_list("version", flat=True)) == [2]


def test_it_keeps_a_folder_that_another_model_row_still_points_at(project, dataset, django_capture_on_commit_callbacks):
    first = make_run(project, dataset).models.get()
    second = make_run(project, dataset, name="Again").models.get()
    TrainedModel.objects.filter(pk=second.pk).update(path=first.path)  # rows copied in by hand
    with django_capture_on_commit_callbacks(execute=True):
        editing.trained_model_delete(model=second)
    assert (storage.model_dir(first.pk) / "model.keras").is_file()
