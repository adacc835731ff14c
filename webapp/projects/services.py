"""Writes for projects. Datasets have their own module: webapp.projects.datasets."""

from django.db import IntegrityError, transaction

from webapp.core.errors import ServiceError

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
    """Delete a project, its datasets, experiments and models, and their files."""
    import shutil

    from webapp.core import storage

    dataset_ids = list(project.datasets.values_list("id", flat=True))
    session_ids = list(project.upload_sessions.values_list("id", flat=True))
    model_paths = list(project.models.values_list("path", flat=True))
    with transaction.atomic():
        # Models and experiments PROTECT their sources; remove them first, newest first.
        project.models.all().delete()
        for experiment in project.experiments.order_by("-created_at"):
            experiment.jobs.all().delete()
        project.experiments.filter(base_experiment__isnull=False).delete()
        project.experiments.all().delete()
        project.delete()
    for dataset_id in dataset_ids:
        shutil.rmtree(storage.dataset_dir(dataset_id), ignore_errors=True)
        shutil.rmtree(storage.uploads_root() / f"dataset-{dataset_id}", ignore_errors=True)
    for session_id in session_ids:  # folder uploads that were never finished
        shutil.rmtree(storage.uploads_root() / f"session-{session_id}", ignore_errors=True)
    for path in model_paths:
        shutil.rmtree(path, ignore_errors=True)
