from datetime import timedelta

from django.contrib.admin import helpers
from django.urls import reverse
from django.utils import timezone

from tests.dashboard.factories import make_experiment, make_job, make_project
from webapp.experiments.models import TrainingJob

Status = TrainingJob.Status


def test_it_fails_stale_jobs_from_the_admin_whatever_is_selected(admin_client, alice, settings, clean_broker):
    experiment = make_experiment(make_project(alice))
    long_ago = timezone.now() - timedelta(seconds=settings.TL_HEARTBEAT_STALE_SECONDS + 60)
    stale = make_job(experiment, Status.RUNNING, heartbeat_at=long_ago)
    finished = make_job(experiment, Status.SUCCEEDED)

    response = admin_client.post(
        reverse("admin:experiments_trainingjob_changelist"),
        {"action": "reap_stale_jobs", helpers.ACTION_CHECKBOX_NAME: [finished.pk], "index": 0},
        follow=True,
    )
    stale.refresh_from_db()
    assert stale.status == Status.FAILED and stale.error.startswith("worker lost")
    assert f"Failed 1 stale job(s) as worker lost: {stale.pk}." in response.content.decode()
