"""The whole path a user takes, in a real browser, with a real worker training a real (tiny) model."""

import re

import pytest
from playwright.sync_api import expect

from tests.helpers import celery_worker
from webapp.experiments.models import TrainedModel

from .support import drop_file, screenshot, write_image_folder

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def private_storage(settings, tmp_path):
    settings.TL_STORAGE_ROOT = tmp_path / "storage"


def test_upload_train_publish_and_try_a_model(signed_in, tmp_path, clean_broker):
    page = signed_in
    # 56 files: more than one 50-file batch, so the batching is exercised too.
    folder = write_image_folder(tmp_path / "upload", train=20, validation=8)

    with celery_worker("browser", queues="default,training"):
        # A project.
        page.get_by_role("link", name="Projects", exact=True).click()
        screenshot(page, "01-projects-empty")
        page.get_by_role("link", name="New project", exact=True).click()
        page.get_by_label("Name").fill("Shapes")
        page.get_by_label("Description").fill("Red discs and green discs.")
        page.get_by_role("button", name="Save").click()
        page.wait_for_url(re.compile(r"/projects/\d+/$"))
        project_url = page.url
        screenshot(page, "02-project")

        # A folder of images through the folder picker, sent in batches with relative paths.
        page.get_by_role("link", name="Upload data").first.click()
        # The input is in the HTML before upload.js (deferred) has attached its change handler: choosing
        # the folder earlier leaves the summary empty (seen once in CI), as it would for a user that fast.
        page.wait_for_url(re.compile(r"/datasets/new/$"))
        page.wait_for_load_state("load")
        page.set_input_files("input[webkitdirectory]", str(folder))
        expect(page.locator(".folder-summary")).to_contain_text("56 files")
        screenshot(page, "03-dataset-upload")
        page.get_by_role("button", name="Upload folder").click()
        page.wait_for_url(re.compile(r"/datasets/\d+/$"))
        page.locator("#dataset-status .badge.ready").wait_for(timeout=60_000)
        page.wait_for_load_state("networkidle")
        screenshot(page, "04-dataset-report")
        assert "green" in page.content() and "red" in page.content()

        # A bottleneck experiment from the blog preset, shrunk to seconds: no weights, 32x32, 2 epochs.
        page.goto(project_url)
        page.get_by_role("link", name="New experiment").click()
        page.get_by_role("link", name="Blog: bottleneck features").click()
        page.get_by_label("Name", exact=True).fill("Tiny bottleneck")
        page.get_by_label("Weights").select_option("none")
        page.get_by_label("Image height").fill("32")
        page.get_by_label("Image width").fill("32")
        page.get_by_label("Epochs").fill("2")
        page.get_by_label("Batch size").fill("8")
        page.get_by_label("Head units").fill("16")
        # Preview what the augmentation options do to this dataset's training images (a mode that
        # augments shows them; back in bottleneck mode they are hidden and not sent).
        page.get_by_label("Mode", exact=True).select_option("finetune")
        page.get_by_label("Rotation range").fill("30")
        page.get_by_label("Horizontal flip").check()
        page.get_by_role("button", name="Preview augmentation").click()
        page.locator("#aug-preview .aug-row img").first.wait_for(timeout=60_000)
        assert page.locator("#aug-preview .aug-row").count() == 2
        assert page.locator("#aug-preview .aug-row").first.locator("img").count() == 5
        page.get_by_label("Mode", exact=True).select_option("bottleneck")
        assert not page.get_by_label("Rotation range").is_visible()
        screenshot(page, "05-new-experiment")
        page.get_by_role("button", name="Start").click()
        page.wait_for_url(re.compile(r"/experiments/\d+/$"))
        status = page.locator("#job-status")
        status.locator(".badge.succeeded, .badge.failed").first.wait_for(timeout=150_000)
        assert status.locator(".badge.succeeded").count() == 1, status.inner_text()
        # The polled status was spoken once it changed, from the page's one stable live region.
        assert "Training succeeded" in page.locator("#sr-announcer").inner_text()
        page.locator("#curves-empty").wait_for(state="hidden")
        page.wait_for_load_state("networkidle")
        screenshot(page, "06-experiment")
        assert "Confusion matrix" in page.content()

    # Publish the model, then ask it about an image dropped on "try it".
    page.get_by_role("link", name="v1").first.click()
    page.wait_for_url(re.compile(r"/models/$"))
    page.get_by_role("button", name="Publish").click()
    page.get_by_text("published", exact=True).first.wait_for()
    assert TrainedModel.objects.get().published

    sample = next((folder / "validation" / "red").iterdir()).read_bytes()
    page.locator("#try-it").scroll_into_view_if_needed()
    drop_file(page, "#try-it .dropzone", sample, "red-sample.jpg")
    label = page.locator("#try-it .try-label")
    label.wait_for(timeout=90_000)
    answer = page.locator("#try-it .try-answer").inner_text()
    assert label.inner_text() in ("green", "red")
    assert re.search(r"with probability \d{1,3}\.\d %", answer), answer
    assert page.locator("#try-it .prob-bars li").count() == 2
    screenshot(page, "07-models-try-it")

    # Picking a file (keyboard users' way in) asks again.
    page.locator("#try-image").focus()
    page.set_input_files("#try-image", str(next((folder / "validation" / "green").iterdir())))
    page.locator("#try-it .try-status", has_text="Answer for green").wait_for()
    assert page.locator("#try-it .prob-bars li").count() == 2

    # A file that only claims to be an image: the API's message is shown, beside the box.
    drop_file(page, "#try-it .dropzone", b"not really a jpeg", "broken.jpg")
    error = page.locator("#try-it .try-error")
    error.filter(has_text="broken.jpg: not an image").wait_for()
    assert page.locator("#try-it .prob-bars").count() == 0
    assert page.locator("#try-it .try-preview img").count() == 0
    screenshot(page, "07c-try-it-error")

    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "07b-models-try-it-phone")
