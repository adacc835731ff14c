import pytest

from tests.helpers import celery_worker


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_runs_a_task_on_a_real_worker_through_real_redis(clean_broker):
    from webapp.core.tasks import ping

    with celery_worker("ping", queues="default"):
        result = ping.delay("hello")
        assert result.get(timeout=30) == "hello"


def test_the_worker_main_process_does_not_import_tensorflow():
    import subprocess
    import sys

    code = (
        "import os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'webapp.settings.test');"
        "import django; django.setup();"
        "from workers.celery import app; app.loader.import_default_modules();"
        "import webapp.core.tasks, webapp.projects.tasks, webapp.experiments.tasks;"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"


# The names tasks had under workers/tasks.py before each app took its own (issue 14): messages queued
# then, the routes and the beat schedule still name them.
NAMES_BEFORE_THE_MOVE = {
    "workers.tasks.ping",
    "workers.tasks.ingest_dataset",
    "workers.tasks.reap_stale_ingests",
    "workers.tasks.sweep_storage",
    "workers.tasks.run_training_job",
    "workers.tasks.reap_stale_jobs",
}


def test_autodiscovery_registers_every_task_name_that_messages_routes_and_beat_use(settings):
    from workers.celery import app

    app.loader.import_default_modules()  # what a worker does at start: autodiscovery over INSTALLED_APPS
    registered = set(app.tasks)
    assert NAMES_BEFORE_THE_MOVE <= registered, NAMES_BEFORE_THE_MOVE - registered
    named = set(settings.CELERY_TASK_ROUTES) | {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert named <= registered, named - registered
    ours = {name for name in registered if not name.startswith("celery.")}
    assert all(name.startswith("workers.tasks.") for name in ours), ours  # one naming, wherever the task lives
