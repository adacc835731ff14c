"""Thin Celery tasks: fetch by id, call one service. Imports of services (and so of TensorFlow)
happen inside the task body, never in the worker's main process (DESIGN §7)."""

from celery import shared_task


@shared_task(name="workers.tasks.ping", acks_late=False)
def ping(value: str = "pong") -> str:
    """A no-op round trip used by health checks and tests of the worker wiring."""
    return value
