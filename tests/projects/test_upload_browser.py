"""upload.js in a real browser: a folder picked with webkitdirectory, sent in batches, and a zip."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.support import screenshot
from tests.projects.images import make_zip, split_files, write_tree
from webapp.projects.datasets import dataset_ingest
from webapp.projects.models import Dataset, Project

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def private_storage(settings, tmp_path):
    settings.TL_STORAGE_ROOT = tmp_path / "storage"


def _upload_page(tab, owner):
    project = Project.objects.create(owner=owner, name="Shapes")
    tab.goto(f"/projects/{project.pk}/")
    tab.get_by_role("link", name="Upload data").click()
    return project


def test_it_uploads_a_picked_folder_in_batches(signed_in, user, tmp_path, clean_broker, settings):
    tab = signed_in
    files = split_files("seed/", train=25, validation=5)  # 60 files: a batch of 50 and one of 10
    files["seed/.DS_Store"] = b"hidden"
    folder = write_tree(tmp_path / "pick", files) / "seed"
    project = _upload_page(tab, user)
    tab.set_input_files("input[webkitdirectory]", str(folder))
    assert "60 files" in tab.locator(".folder-summary").inner_text()
    screenshot(tab, "dataset-upload-page")
    tab.get_by_role("button", name="Upload folder").click()
    tab.wait_for_url(re.compile(r"/datasets/\d+/$"))
    dataset = Dataset.objects.get(project=project)
    assert (dataset.source, dataset.status) == ("folder", "processing")
    dataset = dataset_ingest(dataset_id=dataset.pk)
    assert dataset.status == "ready", dataset.error
    assert dataset.report["wrapper"] == "seed" and dataset.report["totals"]["ignored"] == 0
    # 25 training images per class, 10% of which (TL_TEST_FRACTION) become the test split.
    counts = list(dataset.classes.values_list("train_count", "validation_count", "test_count"))
    assert counts == [(23, 5, 2), (23, 5, 2)]
    tab.locator("#dataset-status .badge.ready").wait_for(timeout=15_000)
    tab.wait_for_load_state("networkidle")
    assert tab.locator("td.thumbs img").count() == 8
    screenshot(tab, "dataset-report")
    assert all(tab.evaluate("[...document.querySelectorAll('td.thumbs img')].map(i => i.naturalWidth > 0)"))


def test_it_uploads_a_zip_with_progress_and_shows_errors(signed_in, user, tmp_path, clean_broker):
    tab = signed_in
    project = _upload_page(tab, user)
    (tmp_path / "notes.zip").write_bytes(b"not a zip at all")
    tab.set_input_files("#archive", str(tmp_path / "notes.zip"))
    tab.get_by_role("button", name="Upload zip").click()
    expect(tab.locator("#zip-form .error")).to_have_text("notes.zip is not a zip archive.")
    archive = make_zip(tmp_path / "seed.zip", split_files(train=3, validation=1))
    tab.set_input_files("#archive", str(archive))
    tab.get_by_role("button", name="Upload zip").click()
    tab.wait_for_url(re.compile(r"/datasets/\d+/$"))
    assert Dataset.objects.get(project=project).source == "zip"


def test_it_shows_the_servers_json_refusals_of_a_folder_upload(signed_in, user, tmp_path, settings):
    tab = signed_in
    folder = write_tree(tmp_path / "pick", split_files("seed/", train=3, validation=1)) / "seed"
    project = _upload_page(tab, user)
    tab.set_input_files("input[webkitdirectory]", str(folder))
    # Lowered after the page was drawn, so the page's own check lets the folder through to the server.
    settings.TL_MAX_UPLOAD_BYTES = 1024
    tab.get_by_role("button", name="Upload folder").click()
    error = tab.locator("#folder-form .error")
    expect(error).to_have_text(re.compile(r"^The file '.+\.jpg' goes past the folder upload limit of 1024 bytes"))
    settings.TL_MAX_UPLOAD_BYTES = 10**9
    tab.context.clear_cookies()
    tab.get_by_role("button", name="Upload folder").click()
    expect(error).to_have_text("The form's security token is missing or out of date; reload the page and try again.")
    assert not Dataset.objects.filter(project=project).exists()
