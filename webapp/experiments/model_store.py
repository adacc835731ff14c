"""A succeeded job's model: its row, its version number and its folder in storage.

Called by the job runner inside the transaction that marks the job succeeded, so that a model
folder exists exactly when its row does.
"""

import os
from pathlib import Path

from django.db.models import Max

from webapp.core import objectstore, storage
from webapp.projects.models import Project

from .models import Experiment, TrainedModel, TrainingJob


def trained_model_create(
    *,
    job: TrainingJob,
    experiment: Experiment,
    model_dir: Path,
    size_bytes: int,
    checksum: str,
    class_names: list[str],
    info: dict,
    accuracy: float | None,
) -> TrainedModel:
    """Number the next version of the project's models, create the row and move ``model_dir``
    (the engine's finished folder) to its storage place. Must run inside a transaction: if it
    does not commit, the caller removes the moved folder (``TrainedModel.files_dir``)."""
    # One version sequence per project: lock the project row while numbering.
    Project.objects.select_for_update().filter(pk=experiment.project_id).first()
    version = (TrainedModel.objects.filter(project_id=experiment.project_id).aggregate(v=Max("version"))["v"] or 0) + 1
    model = TrainedModel.objects.create(
        project_id=experiment.project_id,
        experiment=experiment,
        job_id=job.pk,
        version=version,
        path="",
        size_bytes=size_bytes,
        checksum=checksum,
        class_names=class_names,
        image_size=list(experiment.config.get("image_size") or info.get("image_size") or []),
        backbone=info.get("backbone") or "scratch",
        metrics={**(info.get("metrics") or {}), "accuracy": accuracy},
    )
    final = storage.model_dir(model.pk)
    model.path = storage.key_of(final)
    TrainedModel.objects.filter(pk=model.pk).update(path=model.path)
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(model_dir, final)
        # In the store before the row commits (docs/architecture.md, "Object storage"): any host that
        # sees the model can fetch it.
        objectstore.publish(model.path)
    except BaseException:
        storage.remove(final)
        raise
    return model


def model_files_fetch(path: Path) -> Path:
    """The local copy of the model folder at `path`, fetched from the object store when this host has
    none (docs/architecture.md, "Object storage"); MLError when storage has lost it."""
    from workers.ml.errors import MLError

    try:
        return objectstore.fetch(storage.key_of(path))
    except objectstore.ObjectMissing as exc:
        raise MLError(f"the model's files are missing from storage ({exc})") from exc
