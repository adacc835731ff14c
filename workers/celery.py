"""The Celery app. Configuration lives in Django settings under the CELERY_ namespace.

Each Django app keeps its tasks in its own `tasks.py`, found by autodiscovery over INSTALLED_APPS.
The worker's main process imports no models and never touches TensorFlow: tasks import
services (and through them workers.ml) lazily, inside the task body (docs/decisions.md, "One process per training job").
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings.local")

app = Celery("transferlab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
