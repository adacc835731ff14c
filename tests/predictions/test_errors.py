"""Every API error is JSON in the house shape, 500 included, with a request id that finds the traceback."""

import hashlib
import io
import logging
import re
import shutil
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.predictions.conftest import make_model, shape_png
from webapp.core import storage

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.predictions.error_urls")]


@pytest.fixture
def console_log():
    """What the configured console handler (settings.LOGGING: format and request-id filter) writes."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


@pytest.fixture
def client():
    # Answer as a server does, instead of re-raising the view's exception into the test.
    return Client(raise_request_exception=False)


def _request_id(response) -> str:
    request_id = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    return request_id


def test_it_answers_an_unexpected_api_exception_with_json_500_and_logs_the_traceback_under_its_id(client, console_log):
    response = client.get("/api/test/broken/")
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    request_id = _request_id(response)
    body = response.json()
    assert body == {
        "detail": f"The server failed on this request (request id {request_id}); "
        "it is logged under that id: quote it when you report the problem.",
        "errors": [],
    }
    assert "/srv/" not in response.content.decode() and "Broken" not in response.content.decode()
    log = console_log.getvalue()
    line = next(line for line in log.splitlines() if "Internal Server Error" in line)
    assert f"[{request_id}]" in line and "GET /api/test/broken/" in line
    assert "Traceback (most recent call last)" in log and "Broken: the view broke while reading" in log


def test_it_answers_a_django_level_500_under_api_with_json_and_logs_it_under_its_id(client, console_log):
    response = client.get("/api/test/broken-plain/")
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    request_id = _request_id(response)
    assert f"request id {request_id}" in response.json()["detail"] and response.json()["errors"] == []
    log = console_log.getvalue()
    line = next(line for line in log.splitlines() if "Internal Server Error: /api/test/broken-plain/" in line)
    assert f"[{request_id}]" in line
    assert "Traceback (most recent call last)" in log and "Broken: a plain view broke" in log


def test_it_keeps_html_error_pages_outside_the_api(client, console_log):
    broken = client.get("/test/broken-page/")
    assert broken.status_code == 500 and broken["Content-Type"].startswith("text/html")
    assert f"[{_request_id(broken)}]" in console_log.getvalue()
    forbidden = client.get("/test/forbidden-page/")
    assert forbidden.status_code == 403 and forbidden["Content-Type"].startswith("text/html")
    missing = client.get("/no/such/page/")
    assert missing.status_code == 404 and missing["Content-Type"].startswith("text/html")


def test_it_answers_django_level_404_and_403_under_api_with_json(client):
    missing = client.get("/api/v2/projects/")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "No API endpoint at /api/v2/projects/.", "errors": []}
    forbidden = client.get("/api/test/forbidden-plain/")
    assert forbidden.status_code == 403
    assert forbidden.json() == {"detail": "You do not have permission to do this.", "errors": []}


def test_it_answers_a_refused_host_under_api_with_json_400(client):
    response = client.get("/api/v1/health/", HTTP_HOST="attacker.example")
    assert response.status_code == 400
    assert response.json() == {"detail": "The request was refused as malformed or unsafe.", "errors": []}
    page = client.get("/test/fine/", HTTP_HOST="attacker.example")
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")


def test_it_names_no_server_path_when_a_model_file_cannot_be_loaded(
    alice_api, alice_project, tiny_model, fresh_model_cache
):
    # Keras's own message for this file is "File not found: filepath=/<storage>/models/.../model.keras".
    folder = storage.models_root() / "unreadable"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(tiny_model["path"]) / "model.json", folder / "model.json")
    (folder / "model.keras").write_bytes(b"not a keras zip")
    checksum = hashlib.sha256(b"not a keras zip").hexdigest()
    model = make_model(alice_project, tiny_model, path=str(folder), checksum=checksum)
    image = SimpleUploadedFile("probe.png", shape_png("circle", seed=1), content_type="image/png")
    predict = alice_api.post(f"/api/v1/models/{model.pk}/predict/", {"image": [image]}, format="multipart")
    publish = alice_api.post(f"/api/v1/models/{model.pk}/publish/")
    assert (predict.status_code, publish.status_code) == (503, 409)
    for response in (predict, publish):
        detail = response.json()["detail"]
        assert "Keras could not load the saved model back" in detail and "model.keras" in detail
        assert str(storage.models_root()) not in response.content.decode()
        assert "/unreadable/" not in detail
