"""Writes for experiments, training jobs and trained models (docs/architecture.md, "Job states").

Every status change is one conditional UPDATE whose row count is checked: a
job that the reaper failed, or a user cancelled, can never be moved back by a slower writer.
The body of the training task lives in `webapp.experiments.runner` and the recovery of lost jobs
in `webapp.experiments.recovery`; both are re-exported here so callers need one module.
"""

import logging
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from webapp.core.errors import Conflict, ServiceError
from webapp.projects.models import Dataset, Project

from . import selectors
from .checkpoints import checkpoint_epoch, checkpoint_remove
from .jobqueue import BrokerUnavailable, job_enqueue  # noqa: F401  (BrokerUnavailable is part of the API)
from .models import Experiment, TrainedModel, TrainingJob
from .recovery import training_jobs_reap, training_jobs_requeue_orphans  # noqa: F401  (public services)
from .runner import training_job_claim, training_job_run  # noqa: F401  (public services)

log = logging.getLogger(__name__)

Status = TrainingJob.Status


# --- experiments -----------------------------------------------------------------------------


def experiment_config_validate(*, config: dict):
    """The engine's own validation (no TensorFlow imported) of every key at once.

    Returns the ExperimentConfig; raises ServiceError naming the first key, whose ``errors`` list
    every problem as {field: config key, index: None, message: the engine's words}.
    """
    from workers.ml.config import parse_config
    from workers.ml.errors import ConfigError

    if not isinstance(config, dict):
        raise ServiceError("The experiment config must be a JSON object.", field="config")
    try:
        return parse_config(config, collect=True)
    except ConfigError as exc:
        problems = getattr(exc, "errors", [exc])
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        error = ServiceError(str(exc) + more, field=exc.key)
        error.errors = [{"field": e.key, "index": None, "message": e.message} for e in problems]
        raise error from None


def _check_training_memory(cfg, dataset: Dataset) -> None:
    """Refuse settings whose estimated memory is over the training worker's budget, with the estimate."""
    from workers.ml.config import check_training_memory
    from workers.ml.errors import ConfigError

    counts = dataset.classes.values_list("train_count", "validation_count")
    try:
        check_training_memory(cfg, settings.TL_TRAINING_MEMORY_BYTES, sum(t + v for t, v in counts))
    except ConfigError as exc:
        raise ServiceError(str(exc), field=exc.key) from None


def _resolve_base_experiment(*, project: Project, dataset: Dataset, cfg, raw) -> Experiment:
    if raw in (None, ""):
        raise ServiceError(
            "Fine-tuning starts from a trained bottleneck experiment: choose one as base_experiment.",
            field="base_experiment",
        )
    base_id = raw.pk if isinstance(raw, Experiment) else raw
    if isinstance(base_id, bool) or not isinstance(base_id, (int, str)) or not str(base_id).isdigit():
        raise ServiceError("base_experiment must be an experiment id.", field="base_experiment")
    base = Experiment.objects.filter(pk=int(base_id), project=project).first()
    if base is None:
        raise ServiceError(f"Experiment {base_id} is not in this project.", field="base_experiment")
    problems = []
    if base.mode != Experiment.Mode.BOTTLENECK:
        problems.append(f"it is a {base.mode} experiment, not a bottleneck one")
    if base.dataset_id != dataset.pk:
        problems.append("it was trained on another dataset version")
    if base.backbone != cfg.backbone:
        problems.append(f"its backbone is {base.backbone}, not {cfg.backbone}")
    if list(base.config.get("image_size", [])) != list(cfg.image_size):
        problems.append(f"its image size is {base.config.get('image_size')}, not {list(cfg.image_size)}")
    if not TrainedModel.objects.filter(experiment=base, job__status=Status.SUCCEEDED).exists():
        problems.append("it has no succeeded run with a trained model")
    if problems:
        raise ServiceError(
            f"Experiment {base.pk} ({base.name}) cannot be fine-tuned from: " + "; ".join(problems) + ".",
            field="base_experiment",
        )
    return base


def experiment_create(
    *, project: Project, dataset: Dataset, config: dict, name: str, notes: str = "", user=None, start: bool = True
) -> Experiment:
    """Validate `config` (workers/ml/options.py) against `dataset` and save the experiment.

    With `start` (the default) its first training job is created in the same transaction and
    enqueued once it commits; `experiment.jobs.first()` is that job. Raises ServiceError with
    `field` naming the form field or config key (e.g. "augmentation.rotation_range"), and
    BrokerUnavailable (after saving, with the job failed) when the queue cannot be reached.
    """
    from workers.ml.config import config_to_dict

    name = (name or "").strip()
    if not name:
        raise ServiceError("An experiment needs a name.", field="name")
    if dataset.project_id != project.pk:
        raise ServiceError("That dataset belongs to another project.", field="dataset")
    if not dataset.is_ready:
        raise ServiceError(
            f"Dataset v{dataset.version} is {dataset.status}; only a ready dataset can be trained on.", field="dataset"
        )
    cfg = experiment_config_validate(config=config)
    _check_training_memory(cfg, dataset)
    base = None
    if cfg.mode == Experiment.Mode.FINETUNE:
        base = _resolve_base_experiment(project=project, dataset=dataset, cfg=cfg, raw=config.get("base_experiment"))
    elif config.get("base_experiment") not in (None, ""):
        raise ServiceError("base_experiment is only used in finetune mode.", field="base_experiment")
    stored = config_to_dict(cfg)
    if base is not None:
        stored["base_experiment"] = base.pk
    with transaction.atomic():
        experiment = Experiment.objects.create(
            project=project,
            dataset=dataset,
            name=name[:120],
            notes=notes or "",
            mode=cfg.mode,
            backbone=cfg.backbone,
            config=stored,
            base_experiment=base,
            created_by=user,
        )
        if start:
            training_job_start(experiment=experiment)
    return experiment


# --- starting, cancelling, retrying -----------------------------------------------------------


def training_job_start(*, experiment: Experiment) -> TrainingJob:
    """Create a queued job for `experiment` and enqueue it when the transaction commits.

    The task id is chosen here and stored before anything is sent, so a message can always be
    matched to its row. Raises Conflict while another job of the experiment is queued or running.
    """
    with transaction.atomic():
        # Lock the experiment so two concurrent starts cannot both pass the "no active job" check.
        Experiment.objects.select_for_update().filter(pk=experiment.pk).first()
        if experiment.jobs.filter(status__in=[Status.QUEUED, Status.RUNNING]).exists():
            raise Conflict("This experiment already has a queued or running job.")
        job = TrainingJob.objects.create(
            experiment=experiment, task_id=str(uuid.uuid4()), epochs=int(experiment.config.get("epochs") or 0)
        )
        transaction.on_commit(lambda: job_enqueue(job=job))
    return job


def training_job_cancel(*, job: TrainingJob) -> TrainingJob:
    """Cancel a job: a queued one never starts, a running one stops within a batch.

    Never `revoke(terminate=True)` (docs/decisions.md, "Cancelling"): a killed child leaves TensorFlow state and
    half-written files behind. A running job sees `cancel_requested` from its should_stop poll.
    """
    now = timezone.now()
    if TrainingJob.objects.filter(pk=job.pk, status=Status.QUEUED).update(
        status=Status.CANCELLED, cancel_requested=True, finished_at=now, error="Cancelled before it started."
    ):
        # The claim refuses cancelled rows anyway; the revoke just spares a worker the delivery.
        try:
            from workers.celery import app

            app.control.revoke(str(job.task_id))
        except Exception as exc:  # noqa: BLE001 - any broker error: the claim already guards the start
            log.warning("job %s: revoke failed (%s); the claim will skip it", job.pk, exc)
    elif not TrainingJob.objects.filter(pk=job.pk, status=Status.RUNNING).update(cancel_requested=True):
        job.refresh_from_db()
        raise Conflict(f"This job already ended ({job.status}); there is nothing to cancel.")
    job.refresh_from_db()
    return job


def training_job_retry(*, job: TrainingJob) -> TrainingJob:
    """Run a failed or cancelled job's experiment again, as a new job with the same config.

    The old job's checkpoint goes: the new run starts at epoch 1, and the old job is no longer the
    one its experiment would resume.
    """
    if job.status not in (Status.FAILED, Status.CANCELLED):
        raise Conflict(f"Only a failed or cancelled job can be retried; this one is {job.status}.")
    new = training_job_start(experiment=job.experiment)
    checkpoint_remove(job.pk)
    return new


def training_job_resume(*, job: TrainingJob) -> TrainingJob:
    """Queue a failed or cancelled job again to continue after its checkpoint's last epoch.

    The same job goes back to queued (its attempts, metrics and checkpoint carry on) under a new
    task id: a job cancelled while queued had its old id revoked, and workers drop revoked ids.
    Conflict, with the reason, when the job is not failed or cancelled, is not its experiment's
    latest run, or has no checkpoint (it never completed an epoch, or it was retried).
    """
    if job.status not in (Status.FAILED, Status.CANCELLED):
        raise Conflict(f"Only a failed or cancelled job can be resumed; this one is {job.status}.")
    done = checkpoint_epoch(job.pk)
    if done is None:
        raise Conflict(
            "This job has no checkpoint to resume from: it stopped before completing an epoch. "
            "Retry it to start again from epoch 1."
        )
    with transaction.atomic():
        Experiment.objects.select_for_update().filter(pk=job.experiment_id).first()
        if selectors.latest_job(job.experiment).pk != job.pk:
            raise Conflict("A newer run of this experiment exists; only the latest run can be resumed.")
        if not TrainingJob.objects.filter(pk=job.pk, status__in=[Status.FAILED, Status.CANCELLED]).update(
            status=Status.QUEUED,
            task_id=str(uuid.uuid4()),
            cancel_requested=False,
            finished_at=None,
            worker="",
            heartbeat_at=None,
            started_at=None,
            phase="",
            enqueue_count=0,
            error=f"Resuming after epoch {done}.",
        ):
            raise Conflict("This job changed state meanwhile; reload and try again.")
        job.refresh_from_db()
        transaction.on_commit(lambda: job_enqueue(job=job))
    return job


def experiment_cancel(*, experiment: Experiment) -> TrainingJob:
    """Cancel the experiment's latest job (the API's /experiments/{id}/cancel/)."""
    job = selectors.latest_job(experiment)
    if job is None:
        raise Conflict("This experiment has never been run; there is nothing to cancel.")
    return training_job_cancel(job=job)


def experiment_resume(*, experiment: Experiment) -> TrainingJob:
    """Continue the experiment's latest job from its checkpoint (the API's /resume/)."""
    job = selectors.latest_job(experiment)
    if job is None:
        raise Conflict("This experiment has never been run; there is nothing to resume.")
    return training_job_resume(job=job)


def experiment_retry(*, experiment: Experiment) -> TrainingJob:
    """Run the experiment again after its latest job failed or was cancelled (the API's /retry/)."""
    job = selectors.latest_job(experiment)
    if job is None:
        return training_job_start(experiment=experiment)
    return training_job_retry(job=job)


# --- trained models -----------------------------------------------------------------------


def _load_as_served(model: TrainedModel):
    from workers.ml.predict import LoadedModel

    from .model_store import model_files_fetch

    return LoadedModel.load(model_files_fetch(model.files_dir), expected_sha256=model.checksum)


def trained_model_publish(*, model: TrainedModel, load=None) -> TrainedModel:
    """Make `model` the one its project's prediction endpoint serves (at most one per project).

    The model is loaded first exactly as serving loads it (checksum, safe mode, a warm-up call),
    with `load(model)` when given (the serving cache, which then keeps it warm). A model that
    does not load is never published: Conflict names the cause and the endpoint keeps serving
    what it served before.
    """
    from workers.ml.errors import MLError

    try:
        (load or _load_as_served)(model)
    except MLError as exc:
        log.error("model %s cannot be served, not publishing it: %s", model.pk, exc)
        current = TrainedModel.objects.filter(project_id=model.project_id, published=True).first()
        keeps = f"model v{current.version} is still served" if current else "nothing was published"
        raise Conflict(f"Model v{model.version} cannot be served, so it was not published ({exc}); {keeps}.") from None
    now = timezone.now()
    try:
        with transaction.atomic():
            # Serialises concurrent publishes in one project (the partial unique index is the backstop).
            Project.objects.select_for_update().filter(pk=model.project_id).first()
            TrainedModel.objects.filter(project_id=model.project_id, published=True).exclude(pk=model.pk).update(
                published=False, published_at=None
            )
            TrainedModel.objects.filter(pk=model.pk, published=False).update(published=True, published_at=now)
    except IntegrityError:
        raise Conflict("Another model of this project was published at the same moment; try again.") from None
    model.refresh_from_db()
    return model


def trained_model_unpublish(*, model: TrainedModel) -> TrainedModel:
    """Stop serving `model`; the project then has no published model (predict answers 409)."""
    TrainedModel.objects.filter(pk=model.pk).update(published=False, published_at=None)
    model.refresh_from_db()
    return model
