"""The experiment page's model summary and the curves to keep: PNG files of both charts and the history as CSV."""

import csv
import io

import pytest

from tests.experiments.factories import make_dataset, make_project

from .support import make_finished_experiment, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SUMMARY = {
    "layers": [
        {"name": "vgg16", "type": "Functional", "output_shape": "(None, 1, 1, 512)", "params": 14714688,
         "trainable_params": 0, "state": "frozen", "depth": 0},
        {"name": "block5_conv3", "type": "Conv2D", "output_shape": "(None, 2, 2, 512)", "params": 2359808,
         "trainable_params": 0, "state": "frozen", "depth": 1},
        {"name": "head", "type": "Functional", "output_shape": "(None, 3)", "params": 8259,
         "trainable_params": 8259, "state": "trainable", "depth": 0},
    ],
    "total_params": 14722947, "trainable_params": 8259, "non_trainable_params": 14714688, "file_bytes": 59079182,
}  # fmt: skip


def test_the_model_reads_like_its_summary_and_the_curves_download(signed_in, user):
    project = make_project(user)
    experiment = make_finished_experiment(
        project, make_dataset(project, n_train=1, n_val=1), "Bottleneck", {"mode": "bottleneck"},
        val_accuracy=[0.5, 0.7, 0.8],
    )  # fmt: skip
    job = experiment.jobs.get()
    job.result = {**job.result, "summary": SUMMARY}
    job.save(update_fields=["result"])
    page = signed_in
    page.goto(f"/projects/{project.pk}/experiments/{experiment.pk}/")
    model = page.locator(".model-summary")
    assert model.locator("p").inner_text() == (
        "14,722,947 parameters: 8,259 trained, 14,714,688 not trained; the saved file is 56.3\xa0MB."
    )
    model.get_by_text("Layers, as model.summary() shows them").click()
    assert model.get_by_role("row", name="block5_conv3 Conv2D (None, 2, 2, 512) 2,359,808 frozen").is_visible()

    png = page.locator("#loss-png")
    png.wait_for(state="visible")
    with page.expect_download() as download:
        png.click()
    data = open(download.value.path(), "rb").read()
    assert download.value.suggested_filename == "bottleneck-loss.png" and data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 2000  # a drawn chart, not an empty canvas

    with page.expect_download() as download:
        page.get_by_role("link", name="History (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(open(download.value.path()).read())))
    assert download.value.suggested_filename == "bottleneck-history.csv"
    assert [(r["epoch"], r["val_accuracy"]) for r in rows] == [("1", "0.5"), ("2", "0.7"), ("3", "0.8")]
    screenshot(page, "21-model-summary-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "21-model-summary-390")
