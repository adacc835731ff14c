"""Resuming training jobs from their checkpoints: the service, the API, the page, the reaper and the sweep.

Checkpoints here are written with the engine's own writer (workers.ml.checkpoint, no TensorFlow);
test_resume_worker.py kills a real worker mid-training.
"""

import os
import time
from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from tests.experiments.factories import BOTTLENECK, make_dataset, make_project
from webapp.core import storage
from webapp.core.errors import Conflict
from webapp.core.redis import broker_task_ids
from webapp.experiments import services
from webapp.experiments.models import EpochMetric, Experiment, TrainingJob
from webapp.experiments.runner import MAX_ATTEMPTS
from webapp.projects.recovery import storage_sweep
from webapp.projects.services import project_delete
from workers.ml import checkpoint

Status = TrainingJob.Status


@pytest.fixture
def project(alice):
    return make_project(alice)


@pytest.fixture
def experiment(project, alice):
    dataset = make_dataset(project, n_train=2, n_val=1)
    return Experiment.objects.create(
        project=project, dataset=dataset, name="exp", mode="bottleneck", backbone="vgg16", config=dict(BOTTLENECK),
        created_by=alice,
    )  # fmt: skip


def job_of(experiment, status=Status.FAILED, **fields) -> TrainingJob:
    now = timezone.now()
    fields = {"epochs": 2, "attempts": 1, "started_at": now, **fields}
    if status in TrainingJob.TERMINAL:
        fields.setdefault("finished_at", now)
    return TrainingJob.objects.create(experiment=experiment, status=status, **fields)


def write_checkpoint(job, epoch=1):
    checkpoint.save(
        storage.checkpoint_dir(job.pk), run_fingerprint="f", epoch=epoch,
        history=[{"epoch": i + 1, "loss": 1.0} for i in range(epoch)], best_loss=1.0, best_epoch=1, stopped=False,
        early_stopping=None, variables=[np.zeros(2, np.float32)], optimizer=[np.zeros((), np.int64)], best_weights=None,
    )  # fmt: skip


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def resume_url(experiment):
    return reverse("api-experiment-resume", args=[experiment.pk])


# --- the service and the API ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_queues_a_failed_job_with_a_checkpoint_again_under_a_new_task_id(experiment, alice, clean_broker):
    job = job_of(experiment, error="worker lost", worker="w1", cancel_requested=True)
    write_checkpoint(job, epoch=1)
    old_task = job.task_id
    before = api(alice).get(reverse("api-experiment", args=[experiment.pk])).json()
    assert before["resumable"] is True and before["attempts"] == 1 and before["resumed_from_epoch"] is None

    response = api(alice).post(resume_url(experiment))

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["job"] == job.pk and body["resumable"] is False
    job.refresh_from_db()
    assert job.status == Status.QUEUED and job.task_id != old_task and not job.cancel_requested
    assert job.finished_at is None and job.worker == "" and job.error == "Resuming after epoch 1."
    assert str(job.task_id) in broker_task_ids(["training"])  # sent once the resume committed
    assert checkpoint.latest_epoch(storage.checkpoint_dir(job.pk)) == 1  # the next attempt's starting point


@pytest.mark.django_db
def test_resuming_a_job_without_a_checkpoint_answers_409_with_the_reason(experiment, alice):
    job = job_of(experiment, status=Status.CANCELLED)
    response = api(alice).post(resume_url(experiment))
    assert response.status_code == 409
    assert "no checkpoint" in response.json()["detail"] and "Retry" in response.json()["detail"]
    job.refresh_from_db()
    assert job.status == Status.CANCELLED


@pytest.mark.django_db
def test_resuming_another_users_experiment_answers_404(experiment, bob):
    write_checkpoint(job_of(experiment))
    assert api(bob).post(resume_url(experiment)).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.SUCCEEDED, Status.RUNNING, Status.QUEUED])
def test_only_a_failed_or_cancelled_job_can_be_resumed(experiment, alice, status):
    job = job_of(experiment, status=status)
    write_checkpoint(job)
    response = api(alice).post(resume_url(experiment))
    assert response.status_code == 409 and status in response.json()["detail"]


@pytest.mark.django_db
def test_an_experiment_never_run_has_nothing_to_resume(experiment, alice):
    response = api(alice).post(resume_url(experiment))
    assert response.status_code == 409 and "never been run" in response.json()["detail"]


@pytest.mark.django_db
def test_an_older_run_cannot_be_resumed_once_a_newer_one_exists(experiment):
    old = job_of(experiment)
    write_checkpoint(old)
    job_of(experiment, status=Status.CANCELLED)
    with pytest.raises(Conflict, match="newer run"):
        services.training_job_resume(job=old)


@pytest.mark.django_db(transaction=True)
def test_retrying_starts_over_and_removes_the_old_checkpoint(experiment, clean_broker):
    old = job_of(experiment)
    write_checkpoint(old)
    new = services.training_job_retry(job=old)
    assert new.pk != old.pk and new.status == Status.QUEUED
    assert not storage.checkpoint_dir(old.pk).exists()


# --- the page -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_page_offers_resume_for_a_failed_job_with_a_checkpoint_and_says_where_it_resumed(
    client, experiment, project, alice, clean_broker
):
    client.force_login(alice)
    page = reverse("experiments:detail", args=[project.pk, experiment.pk])
    job = job_of(experiment, resumed_from_epoch=None)
    assert b"Resume</button>" not in client.get(page).content  # no checkpoint yet
    write_checkpoint(job, epoch=2)
    html = client.get(page).content.decode()
    action = reverse("experiments:job_resume", args=[project.pk, job.pk])
    assert f'action="{action}"' in html and "csrfmiddlewaretoken" in html

    response = client.post(action, follow=True)

    assert response.redirect_chain[-1][0] == page
    assert "Run 1 is queued to continue from its checkpoint after epoch 2" in response.content.decode()
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    TrainingJob.objects.filter(pk=job.pk).update(status=Status.RUNNING, resumed_from_epoch=2)
    assert "Resumed from epoch 2" in client.get(page).content.decode()


@pytest.mark.django_db
def test_the_resume_form_refuses_a_job_without_checkpoint_and_another_users_job(
    client, experiment, project, alice, bob
):
    job = job_of(experiment)
    client.force_login(alice)
    response = client.post(reverse("experiments:job_resume", args=[project.pk, job.pk]), follow=True)
    assert "no checkpoint" in response.content.decode()
    client.force_login(bob)
    assert client.post(reverse("experiments:job_resume", args=[project.pk, job.pk])).status_code == 404
    assert client.get(reverse("experiments:job_resume", args=[project.pk, job.pk])).status_code in (404, 405)


@pytest.mark.django_db
def test_the_resume_form_needs_a_csrf_token(experiment, project, alice):
    from django.test import Client

    job = job_of(experiment)
    write_checkpoint(job)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post(reverse("experiments:job_resume", args=[project.pk, job.pk])).status_code == 403
    job.refresh_from_db()
    assert job.status == Status.FAILED


# --- the reaper -------------------------------------------------------------------------------------------


def stale_running(experiment, settings, **fields):
    old = timezone.now() - timedelta(seconds=settings.TL_HEARTBEAT_STALE_SECONDS + 5)
    return job_of(experiment, status=Status.RUNNING, worker="w1", heartbeat_at=old, **fields)


@pytest.mark.django_db(transaction=True)
def test_the_reaper_queues_a_lost_job_with_a_checkpoint_to_continue(experiment, settings, clean_broker):
    job = stale_running(experiment, settings, enqueue_count=2)
    write_checkpoint(job, epoch=2)
    EpochMetric.objects.create(job=job, epoch=1, loss=1.0)
    assert services.training_jobs_reap(ask_workers=False) == [job.pk]
    job.refresh_from_db()
    assert job.status == Status.QUEUED and job.worker == "" and job.enqueue_count == 1
    assert job.error.startswith("worker lost") and "continuing after epoch 2 (attempt 2)" in job.error
    assert str(job.task_id) in broker_task_ids(["training"])
    assert job.metrics.count() == 1  # kept: the next attempt continues this history


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields, why", [({"attempts": MAX_ATTEMPTS}, "attempts used up"), ({"cancel_requested": True}, "cancelling")]
)
def test_the_reaper_fails_a_lost_job_it_may_not_resume_and_keeps_its_checkpoint(experiment, settings, fields, why):
    job = stale_running(experiment, settings, **fields)
    write_checkpoint(job, epoch=2)
    assert services.training_jobs_reap(ask_workers=False) == [job.pk], why
    job.refresh_from_db()
    assert job.status == Status.FAILED and "stopped after epoch 2: resume it" in job.error
    assert checkpoint.latest_epoch(storage.checkpoint_dir(job.pk)) == 2  # the user can still resume it


@pytest.mark.django_db
def test_the_reaper_fails_a_lost_job_without_checkpoint_as_before(experiment, settings):
    job = stale_running(experiment, settings)
    assert services.training_jobs_reap(ask_workers=False) == [job.pk]
    job.refresh_from_db()
    assert job.status == Status.FAILED and job.error.endswith("retry the job.")


# --- where checkpoints go ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_sweep_removes_checkpoints_nothing_can_resume_and_keeps_the_others(experiment, settings):
    settings.TL_SWEEP_AFTER_SECONDS = 60
    succeeded = job_of(experiment, status=Status.SUCCEEDED)
    superseded = job_of(experiment)
    running = job_of(experiment, status=Status.RUNNING)
    latest_failed = job_of(experiment, status=Status.CANCELLED)
    for job in (succeeded, superseded, running, latest_failed):
        write_checkpoint(job)
    gone = storage.checkpoint_dir(987654)
    gone.mkdir(parents=True)
    fresh_orphan = storage.checkpoint_dir(987655)
    fresh_orphan.mkdir(parents=True)
    long_ago = time.time() - 3600
    for folder in storage.checkpoints_root().iterdir():
        if folder != fresh_orphan:
            for path in (folder, *folder.iterdir()):
                os.utime(path, (long_ago, long_ago))

    removed = storage_sweep()["checkpoints"]

    assert sorted(removed) == sorted(f"checkpoints/{pk}" for pk in (succeeded.pk, superseded.pk, 987654))
    assert sorted(p.name for p in storage.checkpoints_root().iterdir()) == sorted(
        str(pk) for pk in (running.pk, latest_failed.pk, 987655)
    )


@pytest.mark.django_db
def test_deleting_the_project_removes_its_jobs_checkpoints(experiment, project):
    job = job_of(experiment)
    write_checkpoint(job)
    project_delete(project=project)
    assert not storage.checkpoint_dir(job.pk).exists()
