"""RabbitMQ as the broker: health, queue contents the reaper can and cannot see, and the GPU queue.

The end-to-end training, cancel and ingest tests run on both brokers (test_workers.py,
tests/projects/test_ingest_worker.py); these cover what differs between them.
"""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from tests.brokers import broker_for_test
from tests.experiments.factories import BOTTLENECK, make_dataset, make_project
from tests.helpers import celery_worker, wait_for
from webapp.core.broker import broker_is_up, lost_task_ids, queue_stats
from webapp.experiments import recovery, services
from webapp.experiments.models import Experiment, TrainingJob
from webapp.experiments.tasks import run_training_job

Status = TrainingJob.Status


@pytest.fixture
def rabbitmq(amqp_url):
    with broker_for_test("amqp", amqp_url) as env:
        yield env


@pytest.fixture
def experiment(alice):
    project = make_project(alice)
    return Experiment.objects.create(
        project=project, dataset=make_dataset(project), name="e", mode="bottleneck", backbone="vgg16",
        config=dict(BOTTLENECK),
    )  # fmt: skip


def _old_queued(experiment) -> TrainingJob:
    job = TrainingJob.objects.create(experiment=experiment)
    TrainingJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=1))
    job.refresh_from_db()
    return job


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_health_reports_rabbitmq_up_and_a_worker_listening_on_it(client, rabbitmq):
    with celery_worker("amqp-health", queues="default", **rabbitmq) as (_proc, node, _log):
        body = client.get("/api/v1/health/").json()
    assert body["status"] == "ok" and body["broker"] == {"ok": True, "detail": "ok"}
    assert node in body["workers"]["hostnames"]


@pytest.mark.django_db
def test_an_unreachable_rabbitmq_is_named_and_answers_503(client):
    with override_settings(CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:1//", TL_BROKER="amqp"):
        assert broker_is_up(timeout=0.5)[0] is False
        response = client.get("/api/v1/health/")
    assert response.status_code == 503
    assert response.json()["broker"]["detail"].startswith("broker unreachable (RabbitMQ): ")
    assert "guest:guest" not in response.json()["broker"]["detail"]


@pytest.mark.django_db(transaction=True)
def test_on_rabbitmq_a_waiting_message_hides_what_is_lost_until_the_queue_drains(experiment, rabbitmq):
    waiting, lost = _old_queued(experiment), _old_queued(experiment)
    run_training_job.apply_async(args=[waiting.pk], task_id=str(waiting.task_id), queue="training")
    assert queue_stats(["training", "training-gpu"]) == {
        "training": {"messages": 1, "consumers": 0},
        "training-gpu": {"messages": 0, "consumers": 0},
    }
    # RabbitMQ cannot list a queue: with a message in it, nothing is concluded about either job.
    assert lost_task_ids(["training", "training-gpu"], [waiting.task_id, lost.task_id]) is None
    assert recovery.training_jobs_requeue_orphans() == {"requeued": [], "failed": []}


@pytest.mark.django_db(transaction=True)
def test_on_rabbitmq_a_job_whose_queue_is_empty_with_no_consumer_is_sent_again(experiment, rabbitmq):
    job = _old_queued(experiment)
    assert lost_task_ids(["training", "training-gpu"], [job.task_id]) == {job.task_id}
    assert recovery.training_jobs_requeue_orphans() == {"requeued": [job.pk], "failed": []}
    job.refresh_from_db()
    assert job.status == Status.QUEUED and job.enqueue_count == 1
    assert queue_stats(["training"])["training"]["messages"] == 1  # re-sent under the same task id


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_on_rabbitmq_a_job_a_live_worker_holds_is_not_lost(experiment, rabbitmq):
    job = _old_queued(experiment)
    held = _old_queued(experiment)
    # The worker consumes `training`; a retry's countdown keeps the message in the worker, unacked.
    with celery_worker("amqp-holder", queues="training", **rabbitmq):
        run_training_job.apply_async(args=[held.pk], task_id=str(held.task_id), queue="training", countdown=600)
        wait_for(lambda: queue_stats(["training"])["training"]["messages"] == 0, timeout=20, message="delivery")
        assert queue_stats(["training"])["training"]["consumers"] == 1
        assert lost_task_ids(["training"], [job.task_id, held.task_id], timeout=2) == {job.task_id}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_gpu_job_waits_while_only_a_cpu_worker_listens_and_the_dashboard_says_so(alice, staff, client, clean_broker):
    project = make_project(alice)
    dataset = make_dataset(project)
    config = {**BOTTLENECK, "epochs": 1}
    with celery_worker("cpu-only", queues="training", TL_WORKER_DEVICE="cpu") as (_proc, node, _log):
        gpu = services.experiment_create(
            project=project, dataset=dataset, config={**config, "device": "gpu"}, name="gpu", user=alice
        ).jobs.get()
        cpu = services.experiment_create(project=project, dataset=dataset, config=config, name="auto", user=alice)
        cpu = cpu.jobs.get()
        # The CPU job, sent after the GPU one, has run to the end: the worker never took the GPU job.
        wait_for(lambda: TrainingJob.objects.get(pk=cpu.pk).status in TrainingJob.TERMINAL, timeout=120, message="cpu")
        client.force_login(staff)
        html = client.get(reverse("dashboard:panel")).content.decode()
    assert TrainingJob.objects.get(pk=cpu.pk).status == Status.SUCCEEDED
    gpu.refresh_from_db()
    assert gpu.status == Status.QUEUED and gpu.worker == "" and gpu.attempts == 0
    assert "No GPU worker is listening on training-gpu" in html and "1 queued job waits there" in html
    assert f'<td class="mono">{node}</td>\n        <td>cpu</td>' in html
    assert queue_stats(["training-gpu"])["training-gpu"]["messages"] == 1
