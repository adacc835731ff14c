"""End to end through a real broker and real `celery worker` processes training real tiny models.

The first two tests run on each broker, Redis and RabbitMQ (tests/brokers.py)."""

import hashlib
from pathlib import Path

import pytest

from tests.experiments.factories import BOTTLENECK, LONG_SCRATCH, make_dataset, make_project
from tests.helpers import celery_worker, wait_for
from webapp.core import storage
from webapp.experiments import services
from webapp.experiments.models import Experiment, TrainedModel, TrainingJob

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

Status = TrainingJob.Status
TRAINING = {"queues": "training", "concurrency": 1, "max_tasks_per_child": 1}


def start(project, dataset, user, config, name="exp") -> TrainingJob:
    experiment = services.experiment_create(
        project=project, dataset=dataset, config=config, name=name, notes="", user=user
    )
    return experiment.jobs.get()


def status_of(job):
    job.refresh_from_db()
    return job.status


def leftover_model_files() -> list[Path]:
    roots = [storage.models_root(), storage.storage_root() / ".staging"]
    return [p for root in roots if root.exists() for p in root.rglob("*")]


def running_epoch(job, at_least: int):
    job.refresh_from_db()
    return job.status == Status.RUNNING and job.epoch >= at_least


def test_a_bottleneck_job_trains_to_success_with_metrics_and_a_model(alice, broker):
    kind, env = broker
    project = make_project(alice)
    dataset = make_dataset(project)
    with celery_worker("e2e", **TRAINING, **env) as (_proc, _node, log):
        job = start(project, dataset, alice, BOTTLENECK)
        wait_for(lambda: status_of(job) in TrainingJob.TERMINAL, timeout=120, message="job to finish")
    # redis:// or, in a second pytest-xdist process, its own embedded Redis's redis+socket://
    assert f"Connected to {'amqp' if kind == 'amqp' else 'redis'}" in log.read_text()
    assert job.status == Status.SUCCEEDED, job.error + job.log_tail
    assert job.attempts == 1 and job.progress == 1.0 and job.worker.startswith("e2e-")
    assert [m.epoch for m in job.metrics.all()] == [1, 2]
    assert all(m.val_accuracy is not None for m in job.metrics.all())
    assert set(job.result["evaluation"]) >= {"accuracy", "labels", "confusion_matrix", "per_class"}
    model = TrainedModel.objects.get(job=job)
    assert model.version == 1 and model.class_names == ["green", "red"] and model.image_size == [32, 32]
    assert model.path == f"models/{model.pk}" and model.files_dir == storage.model_dir(model.pk)  # a key, not a path
    assert hashlib.sha256((model.files_dir / "model.keras").read_bytes()).hexdigest() == model.checksum
    assert (model.files_dir / "model.json").is_file() and model.size_bytes > 0
    assert not model.published


def test_cancelling_a_running_job_stops_it_and_leaves_no_files(alice, broker):
    _kind, env = broker
    project = make_project(alice)
    dataset = make_dataset(project)
    with celery_worker("cancel", **TRAINING, **env):
        job = start(project, dataset, alice, LONG_SCRATCH)
        wait_for(lambda: running_epoch(job, 2), timeout=90, message="training to be under way")
        services.training_job_cancel(job=job)
        # A batch here takes milliseconds: seconds are plenty for "within a batch" plus the poll.
        wait_for(lambda: status_of(job) in TrainingJob.TERMINAL, timeout=15, message="the job to stop")
    assert job.status == Status.CANCELLED and job.epoch < 1000
    assert not TrainedModel.objects.exists()
    assert leftover_model_files() == []


def test_two_workers_take_different_jobs_one_at_a_time_each_exactly_once(alice, clean_broker):
    project = make_project(alice)
    dataset = make_dataset(project)
    config = {**BOTTLENECK, "epochs": 1}
    with celery_worker("one", **TRAINING), celery_worker("two", **TRAINING):
        jobs = [start(project, dataset, alice, config, name=f"exp {i}") for i in range(3)]
        wait_for(lambda: all(status_of(j) in TrainingJob.TERMINAL for j in jobs), timeout=180, message="three jobs")
    assert [j.status for j in jobs] == [Status.SUCCEEDED] * 3, [j.error for j in jobs]
    assert [j.attempts for j in jobs] == [1, 1, 1]
    assert {j.worker.split("-")[0] for j in jobs} == {"one", "two"}
    for worker in {j.worker for j in jobs}:
        mine = sorted((j for j in jobs if j.worker == worker), key=lambda j: j.started_at)
        for before, after in zip(mine, mine[1:], strict=False):
            assert before.finished_at <= after.started_at  # never two at once on one worker
    # The third job waited in the queue and went to whichever worker came free first.
    assert jobs[2].started_at >= min(jobs[0].finished_at, jobs[1].finished_at)
    assert sorted(TrainedModel.objects.values_list("version", flat=True)) == [1, 2, 3]
    assert Experiment.objects.count() == 3
