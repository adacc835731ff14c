"""The dashboard while a real worker trains a real (tiny) job."""

import re

import pytest
from django.urls import reverse

from tests.dashboard.factories import make_project
from tests.experiments.factories import LONG_SCRATCH, make_dataset
from tests.helpers import celery_worker, wait_for
from webapp.experiments import services
from webapp.experiments.models import TrainingJob

Status = TrainingJob.Status


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_shows_a_real_running_job_with_its_progress_and_worker(client, alice, staff, clean_broker):
    project = make_project(alice)
    dataset = make_dataset(project, n_train=8, n_val=4)
    client.force_login(staff)

    with celery_worker(name="dash", queues="training", max_tasks_per_child=1) as (_proc, node, _log):
        experiment = services.experiment_create(
            project=project, dataset=dataset, config=dict(LONG_SCRATCH), name="live-exp", user=alice
        )
        job = experiment.jobs.get()

        def training():
            job.refresh_from_db()
            assert job.status in (Status.QUEUED, Status.RUNNING), job.error
            return job.status == Status.RUNNING and job.epoch >= 1 and job.progress >= 0.02

        wait_for(training, timeout=60, message="the job to train a few epochs")

        html = client.get(reverse("dashboard:panel"), headers={"HX-Request": "true"}).content.decode()
        row = re.search(rf'<tr id="job-{job.pk}">(.*?)</tr>', html, re.S).group(1)
        assert node in row and "live-exp" in row and "Shapes" in row and "alice" in row and "scratch" in row
        percent = int(re.search(r'aria-valuenow="(\d+)"', row).group(1))
        assert percent >= 2 and re.search(rf"\d+ / {LONG_SCRATCH['epochs']}", row)
        assert "estimating" not in row  # past 1%, the ETA is a time
        # The worker table names the same worker and the job its task is running.
        assert node in html.split("<h2>Workers</h2>", 1)[1]
        assert f"run_training_job · job #{job.pk}" in html
        assert "No worker answered" not in html

        page = client.get(reverse("dashboard:index")).content.decode()
        assert f'id="job-{job.pk}"' in page and node in page

        client.post(reverse("dashboard:job_cancel", args=[job.pk]))
        wait_for(lambda: job.refresh_from_db() or job.status == Status.CANCELLED, timeout=30, message="the cancel")
