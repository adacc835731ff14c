"""The fix-the-data loop in Chromium (issue 19, points 2-3): the queue of likely label errors puts the
planted flipped images first, one is relabelled from the queue, a new version is made with it, and
Retrain starts the same experiment on that version."""

import pytest

from tests.experiments.factories import make_dataset, make_project, make_run
from tests.experiments.test_label_errors import FLIPPED
from webapp.core import storage

from .support import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_relabel_from_the_queue_make_a_version_and_retrain(signed_in, user, clean_broker):
    from webapp.experiments.label_errors import label_review_run, label_review_start
    from webapp.experiments.models import Experiment
    from webapp.projects.datasets import dataset_ingest
    from webapp.projects.models import Dataset

    project = make_project(user)
    dataset = make_dataset(project, n_train=20, n_val=6, seed=4)
    root = storage.dataset_dir(dataset.pk)
    for path in FLIPPED:
        split, cls, name = path.split("/")
        (root / split / ("green" if cls == "red" else "red") / name.removeprefix("flipped-")).rename(root / path)
    experiment = make_run(project, dataset)
    review = label_review_start(dataset=dataset)
    assert label_review_run(review_id=review.pk, worker="browser test") == "ready"

    page = signed_in
    page.goto(f"/datasets/{dataset.pk}/label-errors/")
    first = page.locator("[data-testid=image-actions]").first
    path = first.locator("input[name=path]").get_attribute("value")
    assert path in FLIPPED  # the planted mistakes lead the queue
    wrong, right = path.split("/")[1], ("green" if path.split("/")[1] == "red" else "red")
    first.get_by_label("Class").select_option(right)
    first.get_by_role("button", name=f"Relabel {path}").click()
    page.get_by_text(f"Will move to {right} in the next version.").first.wait_for()
    screenshot(page, "19-label-errors-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "19-label-errors-390")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_role("button", name="Create new version (1 relabelled)").click()
    page.wait_for_url("**/datasets/*/")
    new = Dataset.objects.get(project=project, version=2)
    assert dataset_ingest(dataset_id=new.pk).status == "ready"  # the ingest worker's part, in this process
    page.reload()
    assert "made from v1: 1 relabelled" in page.content()
    assert (storage.dataset_dir(new.pk) / "/".join((path.split("/")[0], right, path.split("/")[2]))).is_file()

    page.goto(f"/projects/{project.pk}/experiments/{experiment.pk}/")
    panel = page.locator("section", has=page.get_by_role("heading", name="Retrain on a fixed version"))
    panel.get_by_role("button", name="Retrain").click()
    page.wait_for_url(lambda url: f"/experiments/{experiment.pk}/" not in url)
    retrained = Experiment.objects.get(retrained_from=experiment)
    assert (retrained.dataset_id, retrained.name, retrained.config) == (new.pk, "Bottleneck on v2", experiment.config)
    assert page.locator("#job-status .badge").inner_text() == "queued"
    assert wrong != right
