"""An export through real Redis and a real `celery worker` process on the default queue, then its
project deleted: rows and folders go."""

import numpy as np
import pytest

from tests.helpers import celery_worker, load_launch, wait_for
from webapp.core import storage
from webapp.exports.models import ModelExport
from webapp.projects.services import project_delete
from workers.ml.export import FLOAT_MAX_ABS_DIFF

from .conftest import api_probabilities, run_snippet, sample_image, unzip

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def pool_pids(node: str) -> set[int]:
    from workers.celery import app

    stats = (app.control.inspect(destination=[node], timeout=2).stats() or {}).get(node) or {}
    return set(stats.get("pool", {}).get("processes", []))


def test_a_worker_exports_tflite_and_deleting_the_project_removes_it(
    alice_api, model, clean_broker, tmp_path, fresh_model_cache
):
    # As bin/run starts the default worker: a child that imported TensorFlow for an export is replaced.
    child_kb = load_launch().DEFAULT_WORKER_CHILD_KB
    with celery_worker("exports", queues="default", max_memory_per_child_kb=child_kb) as (_, node, _):
        children = pool_pids(node)
        created = alice_api.post(f"/api/v1/models/{model.pk}/exports/", {"format": "tflite"}, format="json")
        assert created.status_code == 202, created.content
        url = f"/api/v1/exports/{created.json()['id']}/"
        export = wait_for(
            lambda: (e := alice_api.get(url).json())["status"] in ("ready", "failed") and e,
            timeout=240,
            message="the export to finish",
        )
        assert export["status"] == "ready", export["error"]
        wait_for(
            lambda: (now := pool_pids(node)) and now != children,
            timeout=30,
            message="the default worker to replace the child that ran TensorFlow",
        )
    assert export["verification"]["n"] == 12 and export["verification"]["top1_agreement"] == 1.0
    assert export["verification"]["max_abs_diff"] <= FLOAT_MAX_ABS_DIFF and export["latency_ms"] > 0
    row = ModelExport.objects.get(pk=export["id"])
    assert row.worker.startswith("exports-") and row.attempts == 1 and row.path == f"exports/{row.pk}"

    download = alice_api.get(export["download_url"])
    folder = unzip(b"".join(download.streaming_content), tmp_path / "bundle")
    assert (folder / "model.tflite").is_file()
    image = tmp_path / "photo.png"
    image.write_bytes(sample_image())
    got = np.asarray(run_snippet(folder, image)["predictions"][0]["probabilities"])
    served = np.asarray(api_probabilities(alice_api, model.pk, image.read_bytes(), model.class_names))
    assert got.argmax() == served.argmax() and np.max(np.abs(got - served)) <= FLOAT_MAX_ABS_DIFF

    assert storage.export_dir(row.pk).is_dir()
    project_delete(project=model.project)
    assert not ModelExport.objects.exists()
    assert not storage.export_dir(row.pk).exists()
