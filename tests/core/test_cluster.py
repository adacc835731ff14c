"""Two hosts that share nothing but the object store, the database and the broker: the web process
(Django's live server, in this process) and a real `celery worker` process, each with its own
TL_STORAGE_ROOT. A zip goes in over HTTP and comes out as a trained, published, served and exported
model, every file between them passing through SeaweedFS (docs/architecture.md, "Object storage")."""

import io
import time
import zipfile

import pytest
import requests

from tests.helpers import celery_worker, wait_for
from tests.projects.images import make_zip, split_files
from tests.s3 import remote_names, store_env
from webapp.accounts.services import api_token_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCRATCH = {"mode": "scratch", "image_size": [32, 32], "epochs": 2, "batch_size": 4}


def _tree(root) -> set[str]:
    """The objects a local root holds (their top two levels), leaving out its working folders."""
    return {
        "/".join(p.relative_to(root).parts[:2]) for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")
    }


def test_web_and_worker_with_separate_roots_run_upload_to_export_through_the_store(
    live_server, object_store, settings, alice, clean_broker, tmp_path
):
    web_root = settings.TL_STORAGE_ROOT
    worker_root = tmp_path / "host-b"
    worker_root.mkdir()
    endpoint = settings.AWS_S3_ENDPOINT_URL
    _, token = api_token_create(user=alice)
    api = requests.Session()
    api.headers["Authorization"] = f"Token {token}"
    base = f"{live_server.url}/api/v1"
    started, timeline = time.monotonic(), []

    def mark(step: str) -> None:
        timeline.append((time.monotonic() - started, step))

    def poll(url: str, done, what: str) -> dict:
        return wait_for(lambda: (body := api.get(url, timeout=30).json()) and done(body) and body, 240, 0.5, what)

    with celery_worker(
        "cluster", queues="default,training", max_tasks_per_child=1, **store_env(endpoint, object_store, worker_root)
    ) as (_proc, node, log):
        mark(f"worker {node} up")
        project = api.post(f"{base}/projects/", json={"name": "Cluster"}, timeout=30).json()
        archive = make_zip(tmp_path / "shapes.zip", split_files("data/", train=6, validation=3))
        upload = api.post(
            f"{base}/projects/{project['id']}/datasets/", files={"archive": archive.open("rb")}, timeout=60
        )
        assert upload.status_code == 202, upload.text
        mark("zip uploaded to the web process (published to the store)")
        dataset = poll(f"{base}/datasets/{upload.json()['id']}/", lambda d: d["status"] != "processing", "ingest")
        assert dataset["status"] == "ready", f"{dataset['error']}\n{log.read_text()[-3000:]}"
        mark("ingested on the worker")

        created = api.post(
            f"{base}/projects/{project['id']}/experiments/", json={**SCRATCH, "dataset": dataset["id"]}, timeout=60
        )
        assert created.status_code == 201, created.text
        experiment = poll(
            f"{base}/experiments/{created.json()['id']}/",
            lambda e: e["status"] in ("succeeded", "failed", "cancelled"),
            "training",
        )
        assert experiment["status"] == "succeeded", f"{experiment['error']}\n{log.read_text()[-3000:]}"
        model = experiment["model"]["id"]
        mark("trained on the worker")

        published = api.post(f"{base}/models/{model}/publish/", timeout=120)
        assert published.status_code == 200, published.text
        mark("published: the web process fetched and loaded the model")
        image = next(iter(split_files(train=1, validation=0).values()))
        answer = api.post(f"{base}/projects/{project['id']}/predict/", files={"image": ("a.jpg", image)}, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"][0]["label"] in {"cats", "dogs"}
        mark("predicted over HTTP")

        requested = api.post(f"{base}/models/{model}/exports/", json={"format": "onnx"}, timeout=60)
        assert requested.status_code == 202, requested.text
        export = poll(
            f"{base}/exports/{requested.json()['id']}/", lambda e: e["status"] in ("ready", "failed"), "the export"
        )
        assert export["status"] == "ready", f"{export['error']}\n{log.read_text()[-3000:]}"
        mark("exported to ONNX and verified on the worker")
    mark("worker stopped")
    download = api.get(f"{live_server.url}{export['download_url']}", timeout=60)
    assert download.status_code == 200 and int(download.headers["Content-Length"]) == len(download.content)
    with zipfile.ZipFile(io.BytesIO(download.content)) as bundle:
        assert "model.onnx" in bundle.namelist() and "model_card.json" in bundle.namelist()
    mark("bundle downloaded, streamed from the store by the web process")

    dataset_key, model_key, export_key = f"datasets/{dataset['id']}", f"models/{model}", f"exports/{export['id']}"
    stored = {name.split("/.")[0] for name in remote_names(endpoint, object_store)}
    assert {dataset_key, model_key, export_key} <= stored
    assert not any(name.startswith("uploads/") for name in stored), "the upload goes once the dataset is ready"
    # Each host holds only what it wrote or fetched: no shared folder carried anything.
    assert model_key in _tree(web_root) and not _tree(web_root) & {dataset_key, export_key}
    assert {dataset_key, model_key, export_key} <= _tree(worker_root)
    assert not any(name.startswith("uploads/") for name in _tree(web_root) | _tree(worker_root))

    print("\ntimeline (seconds since the worker was asked to start):")
    for seconds, step in timeline:
        print(f"  {seconds:7.1f}  {step}")
