"""The experiment page stays live without moving a keyboard user: the polled status block is morphed
in place, and badge, banner and runs table show one state."""

import pytest
from django.utils import timezone

from tests.experiments.factories import make_dataset, make_project
from webapp.experiments.models import Experiment, TrainingJob

from .support import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_refreshing_job_keeps_focus_on_cancel_and_ends_in_one_state(signed_in, user, settings, tmp_path):
    page = signed_in
    settings.TL_STORAGE_ROOT = tmp_path / "storage"
    project = make_project(user)
    experiment = Experiment.objects.create(
        project=project, dataset=make_dataset(project, n_train=2, n_val=1), name="Live one", mode="bottleneck",
        backbone="vgg16", config={"mode": "bottleneck", "epochs": 4, "image_size": [32, 32]},
    )  # fmt: skip
    job = TrainingJob.objects.create(
        experiment=experiment, status=TrainingJob.Status.RUNNING, phase="training", epoch=1, epochs=4,
        progress=0.1, started_at=timezone.now(),
    )  # fmt: skip
    page.goto(f"/projects/{project.pk}/experiments/{experiment.pk}/")
    status = page.locator("#job-status")
    page.locator("#job-cancel").focus()
    for epoch in (2, 3, 4):  # the worker moves on; each refresh must leave focus where it was
        TrainingJob.objects.filter(pk=job.pk).update(epoch=epoch, progress=epoch / 4 - 0.05)
        status.get_by_text(f"epoch {epoch} of 4").wait_for()
        assert page.evaluate("document.activeElement.id") == "job-cancel"
    assert "Run 1 is running." in page.locator("[data-testid=job-banner]").inner_text()
    screenshot(page, "live-01-running")

    TrainingJob.objects.filter(pk=job.pk).update(
        status=TrainingJob.Status.SUCCEEDED, progress=1.0, finished_at=timezone.now()
    )
    status.locator(".badge.succeeded").wait_for()
    page.locator("#job-runs .badge.succeeded").wait_for()
    assert page.locator("[data-testid=job-banner]").inner_text() == "Run 1 succeeded."
    for stale in ("queued", "running"):
        assert page.locator(f".badge.{stale}").count() == 0
    assert "is queued" not in page.content()
    # Cancel went with the running state: focus stays in the status block, and polling stopped.
    assert page.evaluate("document.activeElement.id") == "job-status-h"
    assert status.get_attribute("hx-get") is None
    screenshot(page, "live-02-succeeded")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "live-03-succeeded-phone")
