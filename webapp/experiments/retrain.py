"""Retrain: the same experiment config on a newer dataset version (docs/decisions.md, "Fix and retrain").

    retrain_targets(experiment) -> [Dataset]   ready versions made, directly or through others, from
                                               the experiment's version (their report's lineage)
    experiment_retrain(*, experiment, dataset, user) -> Experiment
        a new experiment "<name> on v<N>" with the same config on `dataset`, started, and
        retrained_from = `experiment`; the compare page shows the two side by side.

A fine-tune starts from a bottleneck experiment on the same version, so retraining one needs its base
retrained on the new version first (that retrain, with a succeeded run, becomes the new base).
"""

from django.db import transaction

from webapp.core.errors import Conflict, ServiceError
from webapp.projects.models import Dataset

from .models import Experiment, TrainingJob
from .services import experiment_create, training_job_start


def _descendants(dataset: Dataset) -> list[Dataset]:
    versions = list(dataset.project.datasets.filter(status=Dataset.Status.READY, version__gt=dataset.version))
    reached, found = {dataset.pk}, []
    for candidate in sorted(versions, key=lambda d: d.version):
        parent = ((candidate.report or {}).get("lineage") or {}).get("dataset")
        if parent in reached:
            reached.add(candidate.pk)
            found.append(candidate)
    return found


def retrain_targets(experiment: Experiment) -> list[Dataset]:
    """Ready versions descended from the experiment's version, newest first."""
    return sorted(_descendants(experiment.dataset), key=lambda d: -d.version)


def experiment_retrain(*, experiment: Experiment, dataset: Dataset, user=None) -> Experiment:
    """Start `experiment`'s config on `dataset` (a ready version made from its version); see the module doc."""
    if dataset.project_id != experiment.project_id:
        raise ServiceError("That dataset belongs to another project.", field="dataset")
    if dataset.pk not in {d.pk for d in retrain_targets(experiment)}:
        raise ServiceError(
            f"Dataset v{dataset.version} was not made from v{experiment.dataset.version} (or is not ready): "
            "retrain on a version made from this one by edits or without leaks.",
            field="dataset",
        )
    config = dict(experiment.config)
    if experiment.mode == Experiment.Mode.FINETUNE:
        base = (
            Experiment.objects.filter(
                retrained_from_id=experiment.base_experiment_id,
                dataset=dataset,
                jobs__status=TrainingJob.Status.SUCCEEDED,
            )
            .order_by("-created_at")
            .first()
        )
        if base is None:
            name = experiment.base_experiment.name if experiment.base_experiment else "its base experiment"
            raise Conflict(
                f"This fine-tune starts from {name}: retrain that on v{dataset.version} first and wait for it to "
                "succeed, then retrain this one."
            )
        config["base_experiment"] = base.pk
    with transaction.atomic():  # the run is sent once the experiment and its lineage are saved
        created = experiment_create(
            project=experiment.project,
            dataset=dataset,
            config=config,
            name=f"{experiment.name} on v{dataset.version}"[:120],
            notes=f"Retrained from {experiment.name} (v{experiment.dataset.version}) on v{dataset.version}.",
            user=user,
            start=False,
        )
        Experiment.objects.filter(pk=created.pk).update(retrained_from=experiment)
        created.retrained_from = experiment
        training_job_start(experiment=created)
    return created
