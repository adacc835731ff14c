"""A job that cannot be handed to the broker fails with a reason users can read, and no server path."""

import subprocess
import sys

import pytest

from tests.experiments.factories import BOTTLENECK, make_dataset, make_project
from tests.helpers import ROOT, subprocess_env
from webapp.experiments import services
from webapp.experiments.models import TrainingJob


@pytest.mark.django_db(transaction=True)
def test_it_keeps_the_brokers_socket_path_out_of_the_jobs_error(alice, tmp_path):
    project = make_project(alice)
    experiment = services.experiment_create(
        project=project, dataset=make_dataset(project), config=dict(BOTTLENECK), name="exp", notes="", user=alice,
        start=False,
    )  # fmt: skip
    socket = tmp_path / "run" / "redis.sock"
    # A separate process: the Celery app reads its broker URL once, at start. The embedded Redis of
    # the run command listens on a unix socket like this one.
    code = (
        "import django; django.setup()\n"
        "from webapp.experiments import services\n"
        "from webapp.experiments.models import Experiment\n"
        f"e = Experiment.objects.get(pk={experiment.pk})\n"
        "try:\n"
        "    services.training_job_start(experiment=e)\n"
        "except services.BrokerUnavailable as exc:\n"
        "    print('UNAVAILABLE', exc.job.pk)\n"
    )
    env = subprocess_env(REDIS_URL=f"redis+socket://{socket}")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    job = TrainingJob.objects.get(experiment=experiment)
    assert out.stdout.split() == ["UNAVAILABLE", str(job.pk)], out.stderr[-2000:]
    assert job.error.startswith("Could not reach the job queue (Redis) to start this job:")
    assert "redis.sock" in job.error and str(tmp_path) not in job.error and "/run/" not in job.error
