"""Queued jobs whose message vanished (web died before publishing, Redis lost its data) are re-sent."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from tests.experiments.factories import BOTTLENECK, make_dataset, make_project
from webapp.core.redis import broker_task_ids, redis_client
from webapp.experiments import recovery, services
from webapp.experiments.models import Experiment, TrainingJob

Status = TrainingJob.Status


@pytest.fixture
def experiment(alice):
    project = make_project(alice)
    dataset = make_dataset(project)
    return Experiment.objects.create(
        project=project, dataset=dataset, name="e", mode="bottleneck", backbone="vgg16", config=dict(BOTTLENECK)
    )


def _old_queued(experiment, **fields) -> TrainingJob:
    long_ago = timezone.now() - timedelta(hours=1)
    job = TrainingJob.objects.create(experiment=experiment, **fields)
    TrainingJob.objects.filter(pk=job.pk).update(created_at=long_ago)
    job.refresh_from_db()
    return job


@pytest.mark.django_db(transaction=True)
def test_it_resends_a_queued_job_that_was_never_published(experiment, clean_broker):
    job = _old_queued(experiment)
    assert str(job.task_id) not in broker_task_ids(["training"])

    outcome = services.training_jobs_requeue_orphans()

    job.refresh_from_db()
    assert outcome == {"requeued": [job.pk], "failed": []}
    assert job.status == Status.QUEUED and job.enqueue_count == 1 and job.enqueued_at is not None
    assert str(job.task_id) in broker_task_ids(["training"])


@pytest.mark.django_db(transaction=True)
def test_it_leaves_jobs_whose_message_waits_in_the_queue(experiment, clean_broker):
    job = _old_queued(experiment)
    services.training_jobs_requeue_orphans()  # publishes it once
    assert redis_client().llen("training") == 1

    assert services.training_jobs_requeue_orphans(now=timezone.now() + timedelta(hours=1)) == {
        "requeued": [],
        "failed": [],
    }
    assert redis_client().llen("training") == 1
    job.refresh_from_db()
    assert job.enqueue_count == 1


@pytest.mark.django_db(transaction=True)
def test_it_finds_messages_held_unacked_by_a_worker(experiment, clean_broker):
    job = _old_queued(experiment)
    services.training_jobs_requeue_orphans()
    client = redis_client()
    raw = client.rpop("training")  # as a worker's delivery moves it into the unacked hash
    client.hset("unacked", "delivery-tag-1", b"[" + raw + b', "", "training"]')

    assert str(job.task_id) in broker_task_ids(["training"])
    assert services.training_jobs_requeue_orphans(now=timezone.now() + timedelta(hours=1))["requeued"] == []


@pytest.mark.django_db(transaction=True)
def test_it_fails_a_job_whose_message_keeps_vanishing(experiment, clean_broker):
    job = _old_queued(experiment, enqueue_count=recovery.MAX_ENQUEUES)

    outcome = services.training_jobs_requeue_orphans()

    job.refresh_from_db()
    assert outcome == {"requeued": [], "failed": [job.pk]}
    assert job.status == Status.FAILED and "message was lost 3 times" in job.error


@pytest.mark.django_db(transaction=True)
def test_it_leaves_recent_and_cancelled_jobs_alone(experiment, clean_broker):
    recent = TrainingJob.objects.create(experiment=experiment)
    cancelled = _old_queued(experiment, cancel_requested=True)

    assert services.training_jobs_requeue_orphans() == {"requeued": [], "failed": []}
    recent.refresh_from_db(), cancelled.refresh_from_db()
    assert recent.enqueue_count == 0 and cancelled.enqueue_count == 0


@pytest.mark.django_db
def test_it_concludes_nothing_when_redis_cannot_be_read(experiment):
    job = _old_queued(experiment)
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        assert broker_task_ids(["training"]) is None
        assert services.training_jobs_requeue_orphans() == {"requeued": [], "failed": []}
    job.refresh_from_db()
    assert job.status == Status.QUEUED and job.enqueue_count == 0
