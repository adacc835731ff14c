"""The API's multipart uploads (a dataset zip, predict images) are limited while the body is read."""

import pytest
from django.test import Client

from tests.predictions.conftest import make_model
from tests.streams import multipart

pytestmark = pytest.mark.django_db
KIB = 1024


def _post(client, url, body, **extra):
    # DRF's test client sets CONTENT_TYPE from its own argument, over the environ's.
    environ = body.environ(content_length=extra.pop("content_length", True))
    return client.generic("POST", url, content_type=environ["CONTENT_TYPE"], **environ, **extra)


def test_it_refuses_a_dataset_zip_over_the_limit_before_reading_it(alice_api, alice_project, settings, spool):
    settings.TL_MAX_UPLOAD_BYTES = 1024 * KIB
    body = multipart(files=[("archive", "photos.zip", 300_000_000)])
    response = _post(alice_api, f"/api/v1/projects/{alice_project.pk}/datasets/", body)
    assert response.status_code == 413
    assert response.json() == {
        "detail": f"The request body is {body.size} bytes, past the upload limit of 1048576 bytes (TL_MAX_UPLOAD_BYTES).",
        "errors": [{"field": None, "index": None, "message": response.json()["detail"]}],
    }
    assert body.bytes_read == 0 and list(spool.iterdir()) == []
    assert not alice_project.datasets.exists()


def test_it_refuses_before_reading_for_a_browser_session_too(alice, alice_project, settings, spool):
    # A session's CSRF check reads the body during authentication, before the view's parser would.
    settings.TL_MAX_UPLOAD_BYTES = 1024 * KIB
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/projects/")
    body = multipart(files=[("archive", "photos.zip", 300_000_000)])
    response = _post(
        client,
        f"/api/v1/projects/{alice_project.pk}/datasets/",
        body,
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )
    assert response.status_code == 413 and "(TL_MAX_UPLOAD_BYTES)" in response.json()["detail"]
    assert body.bytes_read == 0


def test_it_stops_reading_a_dataset_zip_at_the_limit(alice_api, alice_project, settings, spool):
    settings.TL_MAX_UPLOAD_BYTES = 100 * KIB
    body = multipart(files=[("archive", "photos.zip", 160 * KIB)])
    response = _post(alice_api, f"/api/v1/projects/{alice_project.pk}/datasets/", body)
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "The file 'photos.zip' goes past the upload limit of 102400 bytes (TL_MAX_UPLOAD_BYTES); nothing was stored."
    )
    assert body.bytes_read < body.size and list(spool.iterdir()) == []


def test_it_answers_a_chunked_dataset_upload_with_411(alice_api, alice_project, spool):
    body = multipart(files=[("archive", "photos.zip", 300_000_000)])
    response = _post(alice_api, f"/api/v1/projects/{alice_project.pk}/datasets/", body, content_length=False)
    assert response.status_code == 411
    assert response.json()["detail"].startswith("The upload was sent without a Content-Length header")
    assert body.bytes_read == 0


def test_it_stops_reading_predict_images_at_the_body_limit(alice_api, alice_project, tiny_model, settings, spool):
    make_model(alice_project, tiny_model, published=True)
    settings.TL_PREDICT_MAX_BODY_BYTES = 100 * KIB
    url = f"/api/v1/projects/{alice_project.pk}/predict/"
    whole = multipart(files=[("image", "huge.png", 50_000_000)])
    refused = _post(alice_api, url, whole)
    assert refused.status_code == 413 and whole.bytes_read == 0
    assert refused.json()["detail"] == (
        f"The request body is {whole.size} bytes, past the predict request limit of 102400 bytes "
        "(TL_PREDICT_MAX_BODY_BYTES)."
    )
    body = multipart(files=[("image", "a.png", 60 * KIB), ("image", "b.png", 60 * KIB)])
    response = _post(alice_api, url, body)
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "The file 'b.png' goes past the predict request limit of 102400 bytes (TL_PREDICT_MAX_BODY_BYTES); "
        "nothing was stored."
    )
    assert list(spool.iterdir()) == []
