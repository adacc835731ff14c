"""The projects app's Celery tasks: thin wrappers that fetch by id and call one service.

Services are imported inside the task bodies, never at import time: the worker's main process
imports this module and must stay free of the engine (docs/decisions.md, "One process per training job"). The names keep the prefix of the
module that once held every task, so that messages already queued still run.
"""

from celery import shared_task


# Ingest claims its row first (a redelivery, or the old message of a retried dataset, is a
# no-op) and beats while it runs, so the reaper can fail it if this process is killed. The
# limits are generous because a large zip takes minutes to verify.
@shared_task(
    bind=True,
    name="workers.tasks.ingest_dataset",
    # The row holds the outcome; a Redis result would only add a subscription to the publish,
    # which retried for ~20 s with Redis down instead of failing fast.
    ignore_result=True,
    soft_time_limit=2 * 3600,
    time_limit=2 * 3600 + 300,
)
def ingest_dataset(self, dataset_id: int) -> None:
    """Verify and store an uploaded dataset (runs on the `default` queue)."""
    from .datasets import dataset_ingest

    dataset_ingest(dataset_id=dataset_id, task_id=self.request.id, worker=self.request.hostname or "unknown")


@shared_task(name="workers.tasks.reap_stale_ingests", acks_late=False, ignore_result=True)
def reap_stale_ingests() -> dict:
    """Beat, every 60 s: fail ingests whose heartbeat stopped and re-send ingests whose message vanished."""
    from .recovery import datasets_reap, datasets_requeue_orphans

    return {"reaped": datasets_reap(), **datasets_requeue_orphans()}


@shared_task(name="workers.tasks.sweep_storage", acks_late=False, ignore_result=True)
def sweep_storage() -> dict:
    """Beat, hourly: remove staging folders no live process holds, and files nothing owns."""
    from .recovery import storage_sweep

    return storage_sweep()
