import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.helpers import celery_worker, wait_for
from tests.projects.conftest import files_under
from tests.projects.images import make_zip, split_files
from webapp.projects.models import Dataset


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_ingests_an_uploaded_zip_on_a_real_worker(storage, project, alice_client, tmp_path, broker):
    _kind, env = broker
    archive = make_zip(tmp_path / "seed.zip", split_files("data/", train=4, validation=2))
    with celery_worker(name="ingest", queues="default", **env) as (_, node, log):
        response = alice_client.post(
            reverse("projects:dataset_upload_zip", args=[project.pk]),
            {"archive": SimpleUploadedFile("seed.zip", archive.read_bytes())},
            HTTP_X_REQUESTED_WITH="XMLHttpRequest",
        )
        assert response.status_code == 202
        dataset_id = response.json()["dataset"]
        wait_for(
            lambda: Dataset.objects.get(pk=dataset_id).status != "processing",
            timeout=90,
            message=f"ingest on {node}; log: {log}",
        )
        # The row turns ready before the task removes the upload (a kill in between leaves it to the
        # storage sweep): stopping the worker now could cut the task short, so wait for its end.
        task_id = Dataset.objects.get(pk=dataset_id).task_id
        wait_for(lambda: f"[{task_id}] succeeded" in log.read_text(), timeout=30, message=f"the task's end in {log}")
    dataset = Dataset.objects.get(pk=dataset_id)
    assert dataset.status == "ready", dataset.error
    assert dataset.task_id in log.read_text()
    assert list(dataset.classes.values_list("name", "train_count", "validation_count")) == [
        ("cats", 4, 2),
        ("dogs", 4, 2),
    ]
    stored = files_under(storage)
    assert f"datasets/{dataset_id}/train/cats/cats0.jpg" in stored
    assert not any(path.startswith("uploads/") for path in stored), "the raw upload is removed after ingest"
