"""Head-only jobs on the warm worker: real `celery worker` processes, as bin/run starts them.

The first run of a bottleneck experiment goes to `training` and extracts; later runs on the same features
go to the warm queue, whose child keeps TensorFlow and its verifier between jobs and is replaced after
TL_WARM_MAX_JOBS jobs. Every run trains the same head as a cold process would.
"""

import shutil
from contextlib import contextmanager

import numpy as np
import pytest

from tests.experiments.factories import BOTTLENECK, make_dataset, make_project
from tests.helpers import celery_worker, wait_for
from webapp.core import storage
from webapp.experiments import services
from webapp.experiments.models import TrainedModel, TrainingJob

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

Status = TrainingJob.Status
WARM = {"TL_WORKER_WARM": "1", "TL_WARM_QUEUE": "training-warm"}


def _run(project, dataset, user, name) -> TrainingJob:
    experiment = services.experiment_create(
        project=project, dataset=dataset, config=dict(BOTTLENECK), name=name, notes="", user=user
    )
    job = experiment.jobs.get()
    wait_for(lambda: job.refresh_from_db() or job.status in TrainingJob.TERMINAL, timeout=180, message=f"{name}")
    assert job.status == Status.SUCCEEDED, job.error + job.log_tail
    return job


@contextmanager
def _workers(settings, max_jobs: int):
    """bin/run's training worker and warm worker, routing on; yields the warm worker's log."""
    settings.TL_WARM_QUEUE = "training-warm"
    with (
        celery_worker("cold", queues="training", max_tasks_per_child=1, TL_WARM_QUEUE="training-warm"),
        celery_worker("warm", queues="training-warm", **WARM, TL_WARM_MAX_JOBS=str(max_jobs)) as (_, _node, log),
    ):
        yield log


# clean_broker: a message another test left on training-warm would count against TL_WARM_MAX_JOBS.
def test_head_only_jobs_run_warm_give_what_a_cold_run_gives_and_the_child_is_recycled(alice, settings, clean_broker):
    project = make_project(alice)
    dataset = make_dataset(project)
    with _workers(settings, max_jobs=2) as warm_log:
        first = _run(project, dataset, alice, "first")
        second = _run(project, dataset, alice, "second")
        third = _run(project, dataset, alice, "third")
        # The cache was emptied behind the database's back: the guess sends the job warm, the worker extracts.
        shutil.rmtree(storage.features_dir(dataset.feature_hash))
        fourth = _run(project, dataset, alice, "fourth")
    assert [job.queue for job in (first, second, third, fourth)] == ["training", *["training-warm"] * 3]
    assert first.worker.startswith("cold-") and all(j.worker.startswith("warm-") for j in (second, third, fourth))
    timings = [job.result["timings"] for job in (first, second, third, fourth)]
    assert [t["cache_hit"] for t in timings] == [False, True, True, False]
    process = [t["process"] for t in timings]
    assert [p["warm"] for p in process] == [False, True, True, True]
    # Jobs 2 and 3 share one child; after TL_WARM_MAX_JOBS=2 Celery replaced it for job 4.
    assert [p["job_in_process"] for p in process[1:]] == [1, 2, 1]
    assert process[1]["pid"] == process[2]["pid"] != process[3]["pid"]
    assert warm_log.read_text().count("ready in") >= 2  # each child warmed up ahead of its first job
    # Same config and data: the same head, epoch by epoch, whichever process trained it.
    for job in (second, third, fourth):
        assert job.result["history"] == first.result["history"]
        assert job.result["evaluation"]["confusion_matrix"] == first.result["evaluation"]["confusion_matrix"]
        np.testing.assert_allclose(
            job.result["scored"]["probabilities"], first.result["scored"]["probabilities"], atol=1e-4
        )
        assert job.result["round_trip"]["max_abs_diff"] <= 1e-5
    assert TrainedModel.objects.filter(job__in=[first, second, third, fourth]).count() == 4


def test_a_cancelled_head_only_job_leaves_the_warm_process_fit_for_the_next(alice, settings, clean_broker):
    project = make_project(alice)
    dataset = make_dataset(project)
    with _workers(settings, max_jobs=10):
        first = _run(project, dataset, alice, "first")
        experiment = services.experiment_create(
            project=project, dataset=dataset, config={**BOTTLENECK, "epochs": 1000}, name="long", notes="", user=alice
        )
        long = experiment.jobs.get()
        wait_for(
            lambda: long.refresh_from_db() or (long.status == Status.RUNNING and long.epoch >= 2),
            timeout=120,
            message="the long head-only job to be training",
        )
        services.training_job_cancel(job=long)
        wait_for(lambda: long.refresh_from_db() or long.status in TrainingJob.TERMINAL, timeout=15, message="cancel")
        after = _run(project, dataset, alice, "after")
    assert long.queue == "training-warm" and long.status == Status.CANCELLED and long.epoch < 1000
    assert after.queue == "training-warm" and after.result["timings"]["process"]["job_in_process"] == 2
    assert after.result["history"] == first.result["history"]
    assert not TrainedModel.objects.filter(job=long).exists()
