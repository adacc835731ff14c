"""Files in a multipart body are capped for every view, not only the upload views: a POST to the sign-in
page spooled a file of any size to a temporary file before the form ever looked at it."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.streams import multipart

pytestmark = pytest.mark.django_db
KIB = 1024


def _post(client, url, body, **extra):
    environ = body.environ()
    return client.generic("POST", url, content_type=environ["CONTENT_TYPE"], **environ, **extra)


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_a_300_mb_file_sent_to_a_sign_in_page_is_refused_before_a_byte_is_read(url, spool, settings):
    body = multipart(fields=[("username", "alice"), ("password", "x")], files=[("f", "x.bin", 300_000_000)])
    response = _post(Client(enforce_csrf_checks=True), url, body)
    assert response.status_code == 413
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert response.content.decode() == (
        f"The request body is {body.size} bytes, past the form limit of {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)."
    )
    assert body.bytes_read == 0 and list(spool.iterdir()) == []


def test_a_file_past_the_cap_is_abandoned_mid_body_with_nothing_left_on_disk(spool, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100 * KIB
    body = multipart(fields=[("username", "alice")], files=[("f", "x.bin", 160 * KIB)])
    response = _post(Client(), "/accounts/login/", body, HTTP_ACCEPT="application/json")
    assert response.status_code == 413
    assert response.json()["error"] == (
        "The file 'x.bin' goes past the form limit of 102400 bytes (DATA_UPLOAD_MAX_MEMORY_SIZE); nothing was stored."
    )
    assert body.bytes_read < body.size and list(spool.iterdir()) == []


def test_the_api_answers_413_in_its_own_shape(spool):
    body = multipart(fields=[("username", "alice")], files=[("f", "x.bin", 300_000_000)])
    response = _post(Client(), "/api/v1/auth/token/", body)
    assert response.status_code == 413
    assert (
        "past the form limit" in response.json()["detail"]
        and "(DATA_UPLOAD_MAX_MEMORY_SIZE)" in response.json()["detail"]
    )
    assert body.bytes_read == 0


def test_the_upload_views_replace_the_cap_with_their_own(alice, spool, settings, tmp_path):
    from webapp.projects.models import Project

    settings.TL_STORAGE_ROOT = tmp_path / "storage"
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 32 * KIB
    project = Project.objects.create(owner=alice, name="Uploads")
    client = Client()
    client.force_login(alice)
    session = client.post(reverse("projects:folder_upload_start", args=[project.pk])).json()
    batch = multipart(fields=[("paths", "seed/cats/a.jpg")], files=[("files", "a.jpg", 60 * KIB)])
    response = _post(client, session["files_url"], batch, HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    assert response.json() == {"file_count": 1, "total_bytes": 60 * KIB}
    # The API's upload views too (DRF hands out the request's handler list, which limit_upload edits).
    archive = multipart(files=[("archive", "photos.zip", 60 * KIB)])
    api = _post(client, f"/api/v1/projects/{project.pk}/datasets/", archive)
    assert api.status_code == 400 and api.json()["detail"] == "photos.zip is not a zip archive."  # read in full
