"""The exports app's Celery task: a thin wrapper that fetches by id and calls one service.

The service (and through it workers.ml, so TensorFlow) is imported inside the task body: the
worker's main process imports this module and must never load TensorFlow (docs/decisions.md,
"One process per training job"). The name keeps the "workers.tasks." prefix of every task.
"""

from celery import shared_task
from django.db import InterfaceError, OperationalError


@shared_task(
    bind=True,
    name="workers.tasks.run_export",
    # Acked after the run (CELERY_TASK_ACKS_LATE); the conditional claim makes a redelivery a no-op.
    # The row holds every result; a Redis result would only make the publish subscribe first.
    ignore_result=True,
    # The database dropping the connection before the claim; errors inside a claimed run fail the export.
    autoretry_for=(OperationalError, InterfaceError),
    max_retries=3,
    retry_backoff=5,
)
def run_export(self, export_id: int) -> str:
    """Build and verify one ModelExport (the `default` queue; time limits: CELERY_TASK_*_TIME_LIMIT)."""
    from .services import model_export_run

    return model_export_run(export_id=export_id, worker=self.request.hostname or "unknown")
