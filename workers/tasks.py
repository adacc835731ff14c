"""Thin Celery tasks: fetch by id, call one service. Imports of services (and so of TensorFlow)
happen inside the task body, never in the worker's main process (DESIGN §7)."""

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError


@shared_task(name="workers.tasks.ping", acks_late=False)
def ping(value: str = "pong") -> str:
    """A no-op round trip used by health checks and tests of the worker wiring."""
    return value


# Infrastructure errors the task itself retries: the database dropping the connection before or
# during the claim. Errors inside a claimed run are handled by the service (bounded re-queue).
_DB_BLIPS = (OperationalError, InterfaceError)


@shared_task(
    bind=True,
    name="workers.tasks.run_training_job",
    # Ack after the run: a worker that dies before starting leaves the message for another
    # worker; the conditional claim makes any second delivery a no-op (DESIGN §7).
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
    from webapp.experiments.services import training_job_run

    return training_job_run(job_id=job_id, worker_hostname=self.request.hostname or "unknown")


@shared_task(name="workers.tasks.reap_stale_jobs", acks_late=False, ignore_result=True)
def reap_stale_jobs() -> dict:
    """Beat, every 60 s: fail running jobs whose heartbeat stopped ("worker lost") and re-send
    queued jobs whose message vanished."""
    from webapp.experiments.services import training_jobs_reap, training_jobs_requeue_orphans

    return {"reaped": training_jobs_reap(), **training_jobs_requeue_orphans()}


# Ingest claims its row first (a redelivery, or the old message of a retried dataset, is a
# no-op) and beats while it runs, so the reaper can fail it if this process is killed. The
# limits are generous because a large zip takes minutes to verify.
@shared_task(
    bind=True,
    name="workers.tasks.ingest_dataset",
    # The row holds the outcome; a Redis result would only add a subscription to the publish.
    ignore_result=True,
    soft_time_limit=2 * 3600,
    time_limit=2 * 3600 + 300,
)
def ingest_dataset(self, dataset_id: int) -> None:
    """Verify and store an uploaded dataset (runs on the `default` queue)."""
    from webapp.projects.datasets import dataset_ingest

    dataset_ingest(dataset_id=dataset_id, task_id=self.request.id, worker=self.request.hostname or "unknown")


@shared_task(name="workers.tasks.reap_stale_ingests", acks_late=False, ignore_result=True)
def reap_stale_ingests() -> dict:
    """Beat, every 60 s: fail ingests whose heartbeat stopped and re-send ingests whose message vanished."""
    from webapp.projects.recovery import datasets_reap, datasets_requeue_orphans

    return {"reaped": datasets_reap(), **datasets_requeue_orphans()}


@shared_task(name="workers.tasks.sweep_storage", acks_late=False, ignore_result=True)
def sweep_storage() -> dict:
    """Beat, hourly: remove staging folders no live process holds, and files nothing owns."""
    from webapp.projects.recovery import storage_sweep

    return storage_sweep()
