"""The exports API's contract: cached per model and format, failures surfaced with their reason, owners
only, files gone with their rows."""

import os
import time

import pytest

from webapp.core import storage
from webapp.experiments.models import TrainedModel
from webapp.exports import services
from webapp.exports.models import ModelExport
from webapp.projects.recovery import storage_sweep

from .conftest import svd_model

pytestmark = pytest.mark.django_db


def ask(client, model, fmt="keras"):
    return client.post(f"/api/v1/models/{model.pk}/exports/", {"format": fmt}, format="json")


def test_asking_again_returns_the_same_export(alice_api, model):
    first = ask(alice_api, model)
    again = ask(alice_api, model)
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"] and again.json()["status"] == "queued"
    listed = alice_api.get(f"/api/v1/models/{model.pk}/exports/").json()
    assert [(e["id"], e["format"]) for e in listed] == [(first.json()["id"], "keras")]


@pytest.mark.slow
def test_a_format_the_converter_cannot_make_fails_naming_the_op_and_runs_again_when_asked(alice_api, alice, tiny_model):
    model = svd_model(alice, tiny_model)
    created = ask(alice_api, model, "onnx").json()
    assert services.model_export_run(export_id=created["id"], worker="test") == "failed"
    shown = alice_api.get(f"/api/v1/exports/{created['id']}/").json()
    assert shown["status"] == "failed" and shown["verification"] is None and shown["download_url"] is None
    assert shown["error"].startswith("ONNX could not be produced for this model") and "Svd" in shown["error"]
    assert not storage.export_dir(created["id"]).exists()
    download = alice_api.get(f"/api/v1/exports/{created['id']}/download/")
    assert download.status_code == 409 and "Svd" in download.json()["detail"]

    again = ask(alice_api, model, "onnx")
    assert again.status_code == 202 and again.json()["id"] == created["id"]
    assert again.json()["status"] == "queued" and again.json()["error"] == ""


def test_an_unknown_format_is_refused_naming_the_choices(alice_api, model):
    answer = ask(alice_api, model, "pickle")
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "format" and "pickle" in answer.json()["errors"][0]["message"]
    assert not ModelExport.objects.exists()


def test_the_download_waits_until_the_export_is_ready(alice_api, model):
    export = ask(alice_api, model).json()
    answer = alice_api.get(f"/api/v1/exports/{export['id']}/download/")
    assert answer.status_code == 409 and "is queued, not ready to download" in answer.json()["detail"]


def test_another_users_model_and_exports_are_not_found(alice_api, bob_api, model):
    export = ask(alice_api, model).json()
    assert bob_api.get(f"/api/v1/models/{model.pk}/exports/").status_code == 404
    assert ask(bob_api, model).status_code == 404
    assert bob_api.get(f"/api/v1/exports/{export['id']}/").status_code == 404
    assert bob_api.get(f"/api/v1/exports/{export['id']}/download/").status_code == 404
    assert ModelExport.objects.count() == 1


def test_anonymous_requests_are_refused(client, model):
    assert client.get(f"/api/v1/models/{model.pk}/exports/").status_code in (401, 403)
    assert client.post(f"/api/v1/models/{model.pk}/exports/", {"format": "onnx"}).status_code in (401, 403)
    assert client.get("/api/v1/exports/1/download/").status_code in (401, 403)
    assert not ModelExport.objects.exists()


def test_deleting_a_model_deletes_its_exports_and_their_folders_once_committed(
    alice_api, model, django_capture_on_commit_callbacks
):
    export_id = ask(alice_api, model).json()["id"]
    folder = storage.export_dir(export_id)
    folder.mkdir(parents=True)  # what a finishing export writes
    (folder / "bundle.zip").write_bytes(b"zip")
    with django_capture_on_commit_callbacks(execute=True):
        TrainedModel.objects.filter(pk=model.pk).delete()
    assert not ModelExport.objects.filter(pk=export_id).exists()
    assert not folder.exists()


def test_the_sweep_removes_export_folders_whose_row_is_gone(alice_api, model, settings):
    kept = storage.export_dir(ask(alice_api, model).json()["id"])
    gone = storage.export_dir(9999)
    for folder in (kept, gone):
        folder.mkdir(parents=True)
        (folder / "bundle.zip").write_bytes(b"zip")
        old = time.time() - settings.TL_SWEEP_AFTER_SECONDS - 60
        os.utime(folder / "bundle.zip", (old, old))
        os.utime(folder, (old, old))
    assert storage_sweep()["exports"] == ["exports/9999"]
    assert kept.exists() and not gone.exists()
