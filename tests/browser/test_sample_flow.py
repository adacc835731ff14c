"""From "New project from a sample" to a succeeded experiment, in Chromium, with a real worker: the
Fashion-MNIST files are generated in Keras's own format into the worker's Keras cache, in place of
the download, and keras.datasets reads them there."""

import re

import pytest

from tests.helpers import celery_worker
from tests.projects.test_samples import place_fashion_mnist

from .support import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def private_storage(settings, tmp_path):
    settings.TL_STORAGE_ROOT = tmp_path / "storage"


def test_a_newcomer_goes_from_a_sample_to_a_trained_model(signed_in, tmp_path, clean_broker):
    keras_home = tmp_path / "keras"
    place_fashion_mnist(keras_home)
    page = signed_in
    with celery_worker("sample-flow", queues="default,training", KERAS_HOME=keras_home):
        page.goto("/projects/")
        page.get_by_role("link", name="New project from a sample").click()
        page.get_by_label("Fashion-MNIST: 70,000 Zalando article images, 28x28 grayscale, 10 classes.").check()
        page.get_by_label("All images").check()
        screenshot(page, "21-new-project-from-a-sample")
        page.get_by_role("button", name="Create the project").click()
        page.wait_for_url(re.compile(r"/datasets/\d+/$"))
        page.locator("#dataset-status .badge.ready").wait_for(timeout=90_000)
        page.reload()
        assert "This version is the Keras sample Fashion-MNIST (all)" in page.content()
        assert "ankle_boot" in page.content() and "t-shirt_top" in page.content()
        screenshot(page, "21-sample-dataset-report")

        page.get_by_role("link", name="Fashion-MNIST sample").first.click()
        page.get_by_role("link", name="New experiment").first.click()
        page.get_by_label("Name", exact=True).fill("Small convnet on Fashion-MNIST")
        page.get_by_label("Mode", exact=True).select_option("scratch")
        page.get_by_label("Image height").fill("32")
        page.get_by_label("Image width").fill("32")
        page.get_by_label("Epochs").fill("2")
        page.get_by_label("Batch size").fill("8")
        page.get_by_role("button", name="Start").click()
        page.wait_for_url(re.compile(r"/experiments/\d+/$"))
        status = page.locator("#job-status")
        status.locator(".badge.succeeded, .badge.failed").first.wait_for(timeout=150_000)
        assert status.locator(".badge.succeeded").count() == 1, status.inner_text()
        page.reload()
        assert "parameters:" in page.locator(".model-summary").inner_text()
        screenshot(page, "21-sample-experiment-succeeded")
