"""Celery tasks that belong to no app (found by autodiscovery, see workers/celery.py)."""

from celery import shared_task


# Named for the module that once held every task, so that messages already queued still run.
@shared_task(name="workers.tasks.ping", acks_late=False)
def ping(value: str = "pong") -> str:
    """A no-op round trip used by health checks and tests of the worker wiring."""
    return value
