"""Through real `celery worker` processes: a killed ingest, and a project deleted while its
ingest or its training job runs."""

import os
import re
import signal
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from tests.experiments.factories import LONG_SCRATCH, make_dataset, make_project
from tests.helpers import celery_worker, wait_for
from tests.projects.conftest import files_under
from tests.projects.images import class_files, image_bytes, make_zip
from webapp.core import storage as store
from webapp.experiments import services as experiments
from webapp.experiments.models import TrainingJob
from webapp.projects import recovery, services
from webapp.projects.models import Dataset

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
# A warning or an error logged by the app or Celery (the LOGGING format: time, level, logger).
PROBLEM = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ (WARNING|ERROR|CRITICAL) ", re.MULTILINE)


@pytest.fixture
def api(alice):
    client = APIClient()
    client.force_authenticate(alice)
    return client


def _upload_a_slow_zip(api, project, tmp_path) -> Dataset:
    """A zip of 3,000 images that takes a worker several seconds to verify and store."""
    files = {name: image_bytes(i % 250, size=(400, 300)) for i, name in enumerate(class_files("", per_class=1500))}
    archive = make_zip(tmp_path / "many.zip", files)
    upload = SimpleUploadedFile("many.zip", archive.read_bytes(), content_type="application/zip")
    response = api.post(f"/api/v1/projects/{project.pk}/datasets/", {"archive": upload})
    assert response.status_code == 202, response.content
    return Dataset.objects.get(pk=response.json()["id"])


def _building(dataset) -> bool:
    """Extracted and part way through checking the images."""
    dataset.refresh_from_db()
    return dataset.status == "processing" and 0.05 <= dataset.progress < 0.5


def test_a_killed_ingest_is_reaped_with_its_files_removed_then_retried_to_ready(
    storage, project, api, tmp_path, settings, clean_broker
):
    with celery_worker("doomed-ingest", queues="default") as (proc, _node, _log):
        dataset = _upload_a_slow_zip(api, project, tmp_path)
        wait_for(lambda: _building(dataset), timeout=60, message="the ingest to be under way")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    dataset.refresh_from_db()
    assert dataset.status == "processing", "nobody is left to say otherwise..."
    assert any(f.startswith(f".staging/ingest-{dataset.pk}-") for f in files_under(storage)), "...and files stay"

    later = timezone.now() + timedelta(seconds=settings.TL_INGEST_STALE_SECONDS + 30)
    assert recovery.datasets_reap(now=later) == [dataset.pk]

    dataset.refresh_from_db()
    assert dataset.status == "failed" and "no sign of life from doomed-ingest-" in dataset.error
    assert files_under(storage) == [f"uploads/dataset-{dataset.pk}/archive.zip"]
    with celery_worker("ingest-again", queues="default"):
        assert api.post(f"/api/v1/datasets/{dataset.pk}/retry/").status_code == 202
        wait_for(lambda: Dataset.objects.get(pk=dataset.pk).status != "processing", timeout=90, message="retry")
        # The upload goes just after the row turns ready (a crash between leaves it to the sweep).
        wait_for(lambda: not store.dataset_upload_dir(dataset.pk).exists(), timeout=10, message="the upload to go")
    dataset.refresh_from_db()
    assert dataset.status == "ready", dataset.error
    assert dataset.stats["images"] == 3000 and dataset.classes.count() == 2


def test_a_project_deleted_during_its_ingest_ends_it_quietly_with_no_files(
    storage, project, api, tmp_path, clean_broker
):
    with celery_worker("ingest", queues="default") as (_proc, _node, log):
        dataset = _upload_a_slow_zip(api, project, tmp_path)
        wait_for(lambda: _building(dataset), timeout=60, message="the ingest to be under way")
        services.project_delete(project=project)
        wait_for(
            lambda: "was deleted during its ingest" in log.read_text(), timeout=60, message=f"the ingest to end; {log}"
        )
        text = log.read_text()
    line = next(line for line in text.splitlines() if "was deleted during its ingest" in line)
    assert " INFO webapp.projects.ingest_run " in line and f"dataset {dataset.pk} was deleted" in line
    assert "Traceback" not in text and not PROBLEM.search(text), text[-3000:]
    assert files_under(storage) == []


def test_a_project_deleted_while_its_job_trains_stops_the_job_quietly(storage, alice, clean_broker):
    project = make_project(alice)
    dataset = make_dataset(project)
    with celery_worker("train", queues="training", max_tasks_per_child=1) as (_proc, _node, log):
        experiment = experiments.experiment_create(
            project=project, dataset=dataset, config=LONG_SCRATCH, name="long", user=alice
        )
        job = experiment.jobs.get()
        wait_for(
            lambda: TrainingJob.objects.filter(pk=job.pk, status="running", epoch__gte=2).exists(),
            timeout=90,
            message="training to be under way",
        )
        services.project_delete(project=project)
        ended = f"run_training_job[{job.task_id}] succeeded"
        wait_for(lambda: ended in log.read_text(), timeout=30, message=f"the job to stop; {log}")
        text = log.read_text()
    # The cancel flag set first stops it at its next batch; if the rows are gone by then, that
    # stops it too. Either way: one info line, no traceback, no warning.
    line = next(line for line in text.splitlines() if ended in line)
    assert line.endswith(("'cancelled'", "'deleted'")), line
    assert re.search(rf" INFO webapp\.experiments\.runner .*: job {job.pk} (cancelled|was deleted while it ran)", text)
    assert "Traceback" not in text and not PROBLEM.search(text), text[-3000:]
    assert files_under(storage) == []
