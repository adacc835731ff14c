"""Renaming and deleting experiments and trained models (docs/decisions.md, "Deleting experiments and models").

A delete is refused, with the reason and what to do, while something depends on the object: a
queued or running job, a published model, a fine-tune that starts from it. The checks run again
under the project's row lock, the lock publishing takes, so a model cannot be published between
the check and the delete. Files go once the delete commits: a rolled-back delete keeps them.
"""

from functools import partial

from django.db import transaction
from django.db.models import ProtectedError

from webapp.core import storage
from webapp.core.errors import Conflict, ServiceError
from webapp.projects.models import Project

from .models import Experiment, TrainedModel, TrainingJob

Status = TrainingJob.Status
_ACTIVE = (Status.QUEUED, Status.RUNNING)


def _names(experiments) -> str:
    rows = list(experiments)
    shown = ", ".join(f"{e.name!r} (#{e.pk})" for e in rows[:3])
    return shown + (f" and {len(rows) - 3} more" if len(rows) > 3 else "")


def experiment_update(*, experiment: Experiment, name: str | None = None, notes: str | None = None) -> Experiment:
    """Rename an experiment and/or replace its notes; ServiceError(field="name") for a blank or too long name."""
    fields = []
    if name is not None:
        name = name.strip()
        if not name:
            raise ServiceError("An experiment needs a name.", field="name")
        if len(name) > 120:
            raise ServiceError(f"The name is {len(name)} characters long; at most 120 fit.", field="name")
        experiment.name = name
        fields.append("name")
    if notes is not None:
        experiment.notes = notes.strip()
        fields.append("notes")
    if fields:
        experiment.save(update_fields=fields)
    return experiment


# --- experiments ---------------------------------------------------------------------------------


def experiment_delete_refusal(experiment: Experiment) -> str | None:
    """Why `experiment` cannot be deleted now (a sentence saying what to do first), or None."""
    job = experiment.jobs.filter(status__in=_ACTIVE).order_by("-created_at").first()
    if job is not None:
        if job.cancel_requested:
            return f"its run is stopping after a cancel; delete it once the run shows {Status.CANCELLED}."
        return f"its run is {job.status}; cancel it first."
    published = experiment.models.filter(published=True).first()
    if published is not None:
        return f"its model v{published.version} is published (the project's endpoint serves it); unpublish it first."
    finetunes = Experiment.objects.filter(base_experiment=experiment).order_by("created_at")
    if finetunes.exists():
        return f"fine-tune experiment {_names(finetunes)} starts from it; delete the fine-tune first."
    return None


def experiment_delete(*, experiment: Experiment) -> None:
    """Delete an experiment with its runs, epoch metrics, checkpoints, models and their exports,
    files included. Conflict, with the reason, while a run is queued or running, one of its models
    is published, or a fine-tune uses it as its base."""
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=experiment.project_id).first()
        # The lock a start takes (services.training_job_start): no run can be queued meanwhile.
        if Experiment.objects.select_for_update().filter(pk=experiment.pk).first() is None:
            return  # already deleted
        refusal = experiment_delete_refusal(experiment)
        if refusal:
            raise Conflict(f"Experiment {experiment.name!r} cannot be deleted: {refusal}")
        job_ids = list(experiment.jobs.values_list("pk", flat=True))
        models = list(experiment.models.values_list("pk", "path"))
        try:
            # Models PROTECT their job and experiment: they go first; exports follow by cascade.
            experiment.models.all().delete()
            experiment.delete()
        except ProtectedError:
            raise Conflict(
                f"Experiment {experiment.name!r} cannot be deleted: a fine-tune was created from it meanwhile."
            ) from None
        transaction.on_commit(partial(_files_remove, job_ids=job_ids, models=models))


# --- trained models ------------------------------------------------------------------------------


def _finetunes_starting_from(model: TrainedModel):
    """Fine-tune experiments whose base model is `model`: a fine-tune starts from the newest succeeded
    model of its base experiment (runner._JobRun._base_model_dir), so older models of it are free."""
    newest = (
        TrainedModel.objects.filter(experiment_id=model.experiment_id, job__status=Status.SUCCEEDED)
        .order_by("-version")
        .values_list("pk", flat=True)
        .first()
    )
    if newest != model.pk:
        return Experiment.objects.none()
    return Experiment.objects.filter(base_experiment_id=model.experiment_id).order_by("created_at")


def trained_model_delete_refusal(model: TrainedModel) -> str | None:
    """Why `model` cannot be deleted now (a sentence saying what to do first), or None."""
    if model.published:
        return "it is published (the project's endpoint serves it); unpublish it or publish another first."
    finetunes = _finetunes_starting_from(model)
    if finetunes.exists():
        return (
            f"fine-tune experiment {_names(finetunes)} starts from it (a run or retry loads it); "
            "delete the fine-tune first."
        )
    return None


def trained_model_delete(*, model: TrainedModel) -> None:
    """Delete a model, its folder and its exports; its run stays in the experiment's history.
    Conflict, with the reason, while it is published or a fine-tune starts from it."""
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=model.project_id).first()
        current = TrainedModel.objects.filter(pk=model.pk).first()
        if current is None:
            return  # already deleted
        refusal = trained_model_delete_refusal(current)
        if refusal:
            raise Conflict(f"Model v{current.version} cannot be deleted: {refusal}")
        current.delete()
        transaction.on_commit(partial(_files_remove, job_ids=[], models=[(model.pk, current.path)]))


def _files_remove(*, job_ids, models) -> None:
    for job_id in job_ids:
        storage.remove(storage.checkpoint_dir(job_id))
    for model_id, key in models:
        storage.remove(storage.model_dir(model_id))
        # As project_delete: a row's key may name another folder (one copied in by hand), but never one
        # outside models/, nor one another row still points at.
        folder = storage.path_of(key) if key else None
        if folder and folder.resolve().is_relative_to(storage.models_root().resolve()):
            if not TrainedModel.objects.filter(path=key).exists():
                storage.remove(folder)
