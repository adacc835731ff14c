"""A real worker SIGKILLed in the middle of training: the job continues from its last checkpoint."""

import os
import signal
import time
from datetime import timedelta

import psutil
import pytest
from django.utils import timezone

from tests.experiments.factories import make_dataset, make_project
from tests.helpers import celery_worker, wait_for
from webapp.core import storage
from webapp.experiments import services
from webapp.experiments.models import TrainedModel, TrainingJob
from workers.ml.checkpoint import latest_epoch

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

Status = TrainingJob.Status
TRAINING = {"queues": "training", "concurrency": 1, "max_tasks_per_child": 1}
# 5 scratch epochs of 64 batches of 4 images: about a second each here, long enough to kill one.
FIVE_EPOCHS = {"mode": "scratch", "image_size": [32, 32], "epochs": 5, "batch_size": 4}


def test_a_job_whose_worker_is_killed_in_epoch_3_finishes_from_its_checkpoint(alice, clean_broker, settings):
    project = make_project(alice)
    dataset = make_dataset(project, n_train=128, n_val=8)
    experiment = services.experiment_create(
        project=project, dataset=dataset, config=FIVE_EPOCHS, name="resume", notes="", user=alice
    )
    job = experiment.jobs.get()
    checkpoints = storage.checkpoint_dir(job.pk)
    with celery_worker("doomed", **TRAINING) as (proc, _node, _log):
        # Epoch 2's checkpoint is renamed into place just before epoch 3's first batch.
        wait_for(lambda: latest_epoch(checkpoints) == 2, timeout=90, interval=0.02, message="epoch 2's checkpoint")
        child = psutil.Process(proc.pid).children()[0]  # the prefork child running the job
        os.kill(child.pid, signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)  # and the whole worker: nobody is left to say anything
        proc.wait(timeout=10)
    job.refresh_from_db()
    assert job.status == Status.RUNNING and job.attempts == 1
    done = latest_epoch(checkpoints)
    assert done is not None and 2 <= done < 5, done

    # What beat runs every minute, once the heartbeat is stale: the job goes back to the queue.
    later = timezone.now() + timedelta(seconds=settings.TL_HEARTBEAT_STALE_SECONDS + 30)
    assert services.training_jobs_reap(now=later, inspect_timeout=0.5) == [job.pk]
    job.refresh_from_db()
    assert job.status == Status.QUEUED and f"continuing after epoch {done}" in job.error

    started = time.monotonic()
    with celery_worker("rescuer", **TRAINING):
        wait_for(lambda: job.refresh_from_db() or job.is_terminal, timeout=90, message="the resumed job to end")
        # Removed right after the success commits (a worker killed in between leaves it to the hourly sweep):
        # waited for here, as stopping the worker kills its pool child at once.
        if job.status == Status.SUCCEEDED:
            wait_for(lambda: not checkpoints.exists(), timeout=20, message="the checkpoint's removal after success")
    assert job.status == Status.SUCCEEDED, job.error + job.log_tail
    assert job.attempts == 2 and job.resumed_from_epoch == done and job.worker.startswith("rescuer-")
    assert f"resuming after epoch {done}" in job.log_tail
    assert [m.epoch for m in job.metrics.all()] == [1, 2, 3, 4, 5]
    assert [h["epoch"] for h in job.result["history"]] == [1, 2, 3, 4, 5]
    assert TrainedModel.objects.filter(job=job).count() == 1
    assert not checkpoints.exists()
    print(f"resumed after epoch {done}, finished in {time.monotonic() - started:.1f} s")
