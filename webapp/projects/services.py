"""Writes for projects. Datasets have their own module: webapp.projects.datasets."""

from django.db import IntegrityError, transaction

from webapp.core import storage
from webapp.core.errors import ServiceError

from .dataset_files import dataset_files_remove
from .models import Project


def project_create(*, owner, name: str, description: str = "", store_predictions: bool = False) -> Project:
    name = name.strip()
    if not name:
        raise ServiceError("A project needs a name.", field="name")
    try:
        with transaction.atomic():
            return Project.objects.create(
                owner=owner, name=name, description=description.strip(), store_predictions=store_predictions
            )
    except IntegrityError:
        raise ServiceError(f"You already have a project named {name!r}.", field="name") from None


def project_update(*, project: Project, **fields) -> Project:
    allowed = {"name", "description", "store_predictions"}
    unknown = set(fields) - allowed
    if unknown:
        raise ServiceError(f"Unknown project field(s): {', '.join(sorted(unknown))}.")
    if "name" in fields:
        fields["name"] = fields["name"].strip()
        if not fields["name"]:
            raise ServiceError("A project needs a name.", field="name")
    for key, value in fields.items():
        setattr(project, key, value)
    try:
        with transaction.atomic():
            project.save()
    except IntegrityError:
        raise ServiceError(f"You already have a project named {fields['name']!r}.", field="name") from None
    return project


def project_delete(*, project: Project) -> None:
    """Delete a project with its datasets, experiments, models, exports and predictions, and every
    file of theirs: images, kept uploads, models, exports, stored prediction images, and feature
    caches that no remaining dataset shares.

    Its jobs are cancelled first, in their own commit: a queued one never starts, and a running
    one stops at its next batch (its poll then finds the row gone) and removes its own staging.
    An ingest under way stops at its next progress write and removes what it built.
    """
    from django.apps import apps

    # By name: experiments sits above projects, as the reverse accessors used below do.
    TrainingJob = apps.get_model("experiments", "TrainingJob")
    ModelExport = apps.get_model("exports", "ModelExport")
    jobs = TrainingJob.objects.filter(experiment__project=project)
    jobs.filter(status=TrainingJob.Status.QUEUED).update(
        status=TrainingJob.Status.CANCELLED, cancel_requested=True, error="Cancelled: its project was deleted."
    )
    jobs.filter(status=TrainingJob.Status.RUNNING).update(cancel_requested=True)

    project_id = project.pk
    datasets = list(project.datasets.all())
    session_ids = list(project.upload_sessions.values_list("id", flat=True))
    models = list(project.models.values_list("id", "path"))
    job_ids = list(jobs.values_list("pk", flat=True))
    export_ids = list(ModelExport.objects.filter(model__project=project).values_list("id", flat=True))
    with transaction.atomic():
        # Models and experiments PROTECT their sources; remove them first, newest first.
        project.models.all().delete()
        for experiment in project.experiments.order_by("-created_at"):
            experiment.jobs.all().delete()
        project.experiments.filter(base_experiment__isnull=False).delete()
        project.experiments.all().delete()
        project.delete()
    dataset_files_remove(dataset_ids=[d.pk for d in datasets], feature_hashes=[d.feature_hash for d in datasets])
    for session_id in session_ids:  # folder uploads that were never finished
        storage.remove(storage.upload_session_dir(session_id))
    for model_id, key in models:
        storage.remove(storage.model_dir(model_id))
        # A row's key may name another folder (models copied in by hand); never outside models/.
        folder = storage.path_of(key) if key else None
        if folder and folder.resolve().is_relative_to(storage.models_root().resolve()):
            storage.remove(folder)
    for export_id in export_ids:  # an export still running finds its row gone and removes what it wrote
        storage.remove(storage.export_dir(export_id))
    storage.remove(storage.predictions_dir(project_id))
    for job_id in job_ids:  # training checkpoints; a running job's last write goes with its own exit or the sweep
        storage.remove(storage.checkpoint_dir(job_id))
