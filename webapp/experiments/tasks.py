"""The experiments app's Celery tasks: thin wrappers that fetch by id and call one service.

Services (and through them workers.ml, so TensorFlow) are imported inside the task bodies, never at
import time: the worker's main process imports this module and must never load TensorFlow
(docs/decisions.md, "One process per training job"). The names keep the prefix of the module that once held every task, so that messages
already queued, CELERY_TASK_ROUTES and the beat schedule still find them.
"""

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from . import warm  # connects the warm worker's child start (worker_process_init)

# Infrastructure errors the task itself retries: the database dropping the connection before or
# during the claim. Errors inside a claimed run are handled by the service (bounded re-queue).
_DB_BLIPS = (OperationalError, InterfaceError)


@shared_task(
    bind=True,
    name="workers.tasks.run_training_job",
    # Ack after the run: a worker that dies before starting leaves the message for another
    # worker; the conditional claim makes any second delivery a no-op (docs/decisions.md, "One process per training job").
    acks_late=True,
    # The job row holds every result; a Redis result would only add a pub/sub subscription to
    # apply_async, which retries for ~20 s when Redis is down instead of failing fast.
    ignore_result=True,
    # Soft limit raises inside the run (the job is failed with a message); the hard limit
    # kills a child that ignores it, and the reaper then reports the job as worker lost.
    soft_time_limit=settings.TL_TRAINING_TIME_LIMIT,
    time_limit=settings.TL_TRAINING_TIME_LIMIT + 120,
    autoretry_for=_DB_BLIPS,
    max_retries=3,
    retry_backoff=5,
    retry_jitter=True,
)
def run_training_job(self, job_id: int) -> str:
    """Train one TrainingJob (routed to the "training" queue by CELERY_TASK_ROUTES)."""
    if settings.TL_WORKER_WARM:
        warm.wait_prepared()  # before any import of ours (webapp/experiments/warm.py)
    from .services import training_job_run

    return training_job_run(job_id=job_id, worker_hostname=self.request.hostname or "unknown")


@shared_task(name="workers.tasks.reap_stale_jobs", acks_late=False, ignore_result=True)
def reap_stale_jobs() -> dict:
    """Beat, every 60 s: fail running jobs whose heartbeat stopped ("worker lost") and re-send
    queued jobs whose message vanished."""
    from .services import training_jobs_reap, training_jobs_requeue_orphans

    return {"reaped": training_jobs_reap(), **training_jobs_requeue_orphans()}


@shared_task(
    bind=True,
    name="workers.tasks.run_data_map",
    # The default queue (small work); acked after the run (CELERY_TASK_ACKS_LATE), and the conditional
    # claim makes a redelivery a no-op. The row holds the result.
    ignore_result=True,
    autoretry_for=_DB_BLIPS,
    max_retries=3,
    retry_backoff=5,
)
def run_data_map(self, data_map_id: int) -> str:
    """Compute one DataMap (webapp.experiments.datamaps)."""
    from .datamaps import data_map_run

    return data_map_run(data_map_id=data_map_id, worker=self.request.hostname or "unknown")


@shared_task(
    bind=True,
    name="workers.tasks.find_label_errors",
    # The `default` queue, acked after the run (CELERY_TASK_ACKS_LATE); the conditional claim makes a
    # redelivery a no-op, and the row holds the ranking, so no Redis result is kept.
    ignore_result=True,
    autoretry_for=_DB_BLIPS,
    max_retries=3,
    retry_backoff=5,
)
def find_label_errors(self, review_id: int) -> str:
    """Rank one dataset version's likely label errors (docs/decisions.md, "Likely label errors")."""
    from .label_errors import label_review_run

    return label_review_run(review_id=review_id, worker=self.request.hostname or "unknown")
