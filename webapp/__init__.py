# Load the configured Celery app whenever Django starts, so that tasks sent from web processes use
# the broker from settings rather than Celery's default app (amqp://localhost).
from workers.celery import app as celery_app

__all__ = ["celery_app"]
