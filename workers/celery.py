"""The Celery app. Configuration lives in Django settings under the CELERY_ namespace.

Each Django app keeps its tasks in its own `tasks.py`, found by autodiscovery over INSTALLED_APPS.
The worker's main process imports no models and never touches TensorFlow: tasks import
services (and through them workers.ml) lazily, inside the task body (docs/decisions.md, "One process per training job").
"""

import os

from celery import Celery
from celery.worker.control import inspect_command

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings.local")

app = Celery("transferlab")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@inspect_command()
def tl_device(state):
    """What this worker states it serves (TL_WORKER_DEVICE: cpu or gpu) and the GPUs it was given.

    Answered by the worker's main process from its environment: it never imports TensorFlow
    (docs/decisions.md, "A GPU queue"). The dashboard asks it with `inspect()._request("tl_device")`.
    """
    from django.conf import settings

    return {"device": settings.TL_WORKER_DEVICE, "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}
