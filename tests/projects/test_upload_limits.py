"""Upload limits of the dataset pages, enforced while the body is read; every answer to upload.js is JSON.

The client enforces CSRF as a browser's session does: Django's CSRF check is what read (and spooled)
the whole body before the view's own size check ran.
"""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from tests.projects.conftest import files_under
from tests.streams import multipart
from webapp.core.uploads import UploadTooLarge
from webapp.projects import folder_uploads
from webapp.projects.folder_uploads import folder_upload_add_files, folder_upload_start
from webapp.projects.models import Dataset, UploadSession

XHR = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest", "HTTP_ACCEPT": "application/json"}
KIB = 1024


@pytest.fixture
def browser_like(alice, project):
    """Alice's session with CSRF checked as for her browser; `csrf` holds the headers upload.js sends."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get(reverse("projects:dataset_upload", args=[project.pk]))
    client.csrf = {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value, **XHR}
    return client


def _post_body(client, url, body, **extra):
    return client.generic("POST", url, **body.environ(content_length=extra.pop("content_length", True)), **extra)


def _start_folder(client, project) -> dict:
    answer = client.post(reverse("projects:folder_upload_start", args=[project.pk]), **client.csrf)
    assert answer.status_code == 201
    return answer.json()


def _batch(files):
    """A folder batch as upload.js sends it: each file's relative path, then the file."""
    fields = [("paths", path) for path, _ in files]
    return multipart(fields=fields, files=[("files", path.rsplit("/", 1)[-1], size) for path, size in files])


def test_it_refuses_a_300_mb_zip_by_its_content_length_without_reading_it(
    storage, project, browser_like, settings, spool
):
    settings.TL_MAX_UPLOAD_BYTES = 1024 * KIB
    body = multipart(files=[("archive", "photos.zip", 300_000_000)])
    url = reverse("projects:dataset_upload_zip", args=[project.pk])
    response = _post_body(browser_like, url, body, **browser_like.csrf)
    assert response.status_code == 413
    assert response.json() == {
        "error": f"The request body is {body.size} bytes, past the upload limit of 1048576 bytes (TL_MAX_UPLOAD_BYTES).",
        "field": None,
    }
    assert body.bytes_read == 0
    assert list(spool.iterdir()) == [] and Dataset.objects.count() == 0


def test_it_shows_the_limit_on_the_page_for_a_plain_form_post(storage, project, browser_like, settings, spool):
    settings.TL_MAX_UPLOAD_BYTES = 1024 * KIB
    body = multipart(files=[("archive", "photos.zip", 5_000_000)])
    url = reverse("projects:dataset_upload_zip", args=[project.pk])
    response = _post_body(browser_like, url, body, HTTP_X_CSRFTOKEN=browser_like.csrf["HTTP_X_CSRFTOKEN"])
    assert response.status_code == 413 and response["Content-Type"].startswith("text/html")
    assert "past the upload limit of 1048576 bytes (TL_MAX_UPLOAD_BYTES)" in response.content.decode()
    assert body.bytes_read == 0


def test_it_stops_reading_a_zip_at_the_limit_when_its_length_passed_the_first_check(
    storage, project, browser_like, settings, spool
):
    # Under the Content-Length check (the limit plus room for the multipart framing), over the limit in
    # file bytes: refused by the running count, in the middle of the body.
    settings.TL_MAX_UPLOAD_BYTES = 100 * KIB
    body = multipart(files=[("archive", "photos.zip", 160 * KIB)])
    url = reverse("projects:dataset_upload_zip", args=[project.pk])
    response = _post_body(browser_like, url, body, **browser_like.csrf)
    assert response.status_code == 413
    assert response.json()["error"] == (
        "The file 'photos.zip' goes past the upload limit of 102400 bytes (TL_MAX_UPLOAD_BYTES); nothing was stored."
    )
    assert body.bytes_read < body.size and body.bytes_read <= 100 * KIB + 64 * KIB + 1024
    assert list(spool.iterdir()) == [], "the partly written temporary file is removed at once"
    assert Dataset.objects.count() == 0


def test_it_answers_a_chunked_upload_without_a_length_with_411_and_reads_nothing(storage, project, browser_like, spool):
    body = multipart(files=[("archive", "photos.zip", 300_000_000)])
    url = reverse("projects:dataset_upload_zip", args=[project.pk])
    response = _post_body(browser_like, url, body, content_length=False, **browser_like.csrf)
    assert response.status_code == 411
    assert "without a Content-Length header (a chunked body)" in response.json()["error"]
    assert body.bytes_read == 0 and list(spool.iterdir()) == []


def test_it_refuses_a_folder_batch_over_the_limit_before_reading_it(storage, project, browser_like, settings, spool):
    settings.TL_MAX_UPLOAD_BYTES = 1024 * KIB
    session = _start_folder(browser_like, project)
    body = _batch([("seed/cats/a.jpg", 600 * KIB), ("seed/cats/b.jpg", 600 * KIB)])
    response = _post_body(browser_like, session["files_url"], body, **browser_like.csrf)
    assert response.status_code == 413
    assert response.json()["error"] == (
        f"The request body is {body.size} bytes, past the folder upload limit of 1048576 bytes (TL_MAX_UPLOAD_BYTES)."
    )
    assert body.bytes_read == 0
    assert UploadSession.objects.get().total_bytes == 0 and files_under(storage) == []


def test_it_refuses_the_batch_that_takes_the_folder_past_the_limit(storage, project, browser_like, settings, spool):
    settings.TL_MAX_UPLOAD_BYTES = 100 * KIB
    session = _start_folder(browser_like, project)
    first = _post_body(browser_like, session["files_url"], _batch([("seed/cats/a.jpg", 60 * KIB)]), **browser_like.csrf)
    assert first.status_code == 200 and first.json() == {"file_count": 1, "total_bytes": 60 * KIB}
    second = _batch([("seed/cats/b.jpg", 60 * KIB)])
    response = _post_body(browser_like, session["files_url"], second, **browser_like.csrf)
    assert response.status_code == 413
    assert response.json()["error"] == (
        "The file 'b.jpg' goes past the folder upload limit of 102400 bytes (TL_MAX_UPLOAD_BYTES); nothing was stored."
    )
    assert UploadSession.objects.get().total_bytes == 60 * KIB
    assert files_under(storage / "uploads") == [f"session-{session['session']}/files/seed/cats/a.jpg"]
    assert list(spool.iterdir()) == []


def test_it_holds_parallel_batches_to_the_folder_total(storage, project, alice, settings):
    # Two batches that each passed the request's check (both read the session at 60 KiB): the
    # conditional reservation lets one in and names the file that takes the other over.
    settings.TL_MAX_UPLOAD_BYTES = 100 * KIB
    session = folder_upload_start(project=project, user=alice)
    folder_upload_add_files(session=session, files=[("seed/cats/a.jpg", SimpleUploadedFile("a.jpg", bytes(60 * KIB)))])
    late = [("seed/dogs/c.jpg", SimpleUploadedFile("c.jpg", bytes(30 * KIB)))]
    late.append(("seed/dogs/d.jpg", SimpleUploadedFile("d.jpg", bytes(30 * KIB))))
    with pytest.raises(UploadTooLarge) as caught:
        folder_upload_add_files(session=session, files=late)
    assert caught.value.message == (
        "seed/dogs/d.jpg takes the folder upload past the limit of 102400 bytes (TL_MAX_UPLOAD_BYTES); "
        "nothing from this batch was stored."
    )
    assert UploadSession.objects.get().total_bytes == 60 * KIB


def test_it_counts_the_folder_against_the_smaller_of_the_upload_and_unpacked_limits(
    storage, project, alice_client, settings
):
    settings.TL_MAX_UPLOAD_BYTES, settings.TL_ZIP_MAX_TOTAL_BYTES = 10 * 1024 * KIB, 50 * KIB
    page = alice_client.get(reverse("projects:dataset_upload", args=[project.pk])).content.decode()
    assert f'data-max-bytes="{50 * KIB}"' in page and f'data-max-bytes="{10 * 1024 * KIB}"' in page
    session = alice_client.post(reverse("projects:folder_upload_start", args=[project.pk])).json()
    files = {"paths": ["seed/cats/a.jpg"], "files": [SimpleUploadedFile("a.jpg", bytes(60 * KIB))]}
    response = alice_client.post(session["files_url"], files, **XHR)
    assert response.status_code == 413 and "(TL_ZIP_MAX_TOTAL_BYTES)" in response.json()["error"]


def test_it_refuses_more_files_than_the_folder_limit_naming_it(storage, project, alice_client, settings):
    settings.TL_ZIP_MAX_ENTRIES = 3
    session = alice_client.post(reverse("projects:folder_upload_start", args=[project.pk])).json()
    answers = []
    for names in (["a", "b"], ["c", "d"]):
        files = [SimpleUploadedFile(f"{n}.jpg", b"x") for n in names]
        data = {"paths": [f"seed/cats/{n}.jpg" for n in names], "files": files}
        answers.append(alice_client.post(session["files_url"], data, **XHR))
    assert [a.status_code for a in answers] == [200, 400]
    assert answers[1].json()["error"] == (
        "The folder has more than 3 files (TL_ZIP_MAX_ENTRIES); nothing from this batch was stored."
    )


# --- every answer to upload.js is JSON ------------------------------------------------------------


def test_it_answers_json_for_a_folder_upload_that_has_ended(storage, project, browser_like):
    session = _start_folder(browser_like, project)
    assert browser_like.post(session["finish_url"], **browser_like.csrf).status_code == 400  # no files yet
    UploadSession.objects.all().delete()
    for url in (session["files_url"], session["finish_url"]):
        response = browser_like.post(url, **browser_like.csrf)
        assert response.status_code == 404, url
        assert response.json() == {
            "error": "This folder upload has already finished or has expired; start it again.",
            "field": None,
        }


def test_it_answers_json_401_to_the_script_of_a_signed_out_user(project):
    urls = [
        reverse("projects:dataset_upload_zip", args=[project.pk]),
        reverse("projects:folder_upload_start", args=[project.pk]),
    ]
    for url in urls:
        response = Client().post(url, **XHR)
        assert response.status_code == 401, url
        assert response.json()["error"] == "You are signed out; sign in again in another tab, then retry."
    page_post = Client().post(urls[0])
    assert page_post.status_code == 302 and page_post.url.startswith(reverse("login"))


def test_it_answers_json_when_the_csrf_token_is_missing(storage, project, browser_like):
    response = browser_like.post(reverse("projects:folder_upload_start", args=[project.pk]), **XHR)
    assert response.status_code == 403
    assert response.json()["error"] == (
        "The form's security token is missing or out of date; reload the page and try again."
    )
    body = _batch([("seed/cats/a.jpg", 10)])
    session = _start_folder(browser_like, project)
    batch = _post_body(browser_like, session["files_url"], body, **XHR)
    assert batch.status_code == 403 and "security token" in batch.json()["error"]


def test_it_answers_json_for_a_batch_with_too_many_files(storage, project, browser_like, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    session = _start_folder(browser_like, project)
    body = _batch([(f"seed/cats/{n}.jpg", 10) for n in range(4)])
    response = _post_body(browser_like, session["files_url"], body, **browser_like.csrf)
    assert response.status_code == 400
    assert response.json() == {
        "error": "The number of files exceeded settings.DATA_UPLOAD_MAX_NUMBER_FILES.",
        "field": None,
    }


def test_it_answers_json_500_with_the_request_id_when_a_batch_fails_unexpectedly(
    storage, project, browser_like, monkeypatch
):
    def broken(**kwargs):
        raise OSError(28, "No space left on device", str(storage / "uploads" / "x.jpg"))

    monkeypatch.setattr(folder_uploads, "folder_upload_add_files", broken)
    browser_like.raise_request_exception = False  # answer as a server does
    session = _start_folder(browser_like, project)
    response = _post_body(browser_like, session["files_url"], _batch([("seed/cats/a.jpg", 10)]), **browser_like.csrf)
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    request_id = response["X-Request-ID"]
    assert response.json() == {
        "error": f"The server failed on this request (request id {request_id}); "
        "it is logged under that id: quote it when you report the problem.",
        "field": None,
    }
    assert str(storage) not in response.content.decode()
