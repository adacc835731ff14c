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
