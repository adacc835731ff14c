"""Managing things (issue 18, point 3): rename an experiment, clone it with a change, delete a model."""

import re

import pytest
from playwright.sync_api import expect

from tests.experiments.factories import make_dataset, make_project, make_run
from webapp.core import storage

from .support import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_user_renames_an_experiment_clones_it_with_a_change_and_deletes_a_model(signed_in, user, clean_broker):
    page = signed_in
    project = make_project(user)
    experiment = make_run(project, make_dataset(project, n_train=4, n_val=2))
    model = experiment.models.get()

    page.goto(f"/projects/{project.pk}/experiments/{experiment.pk}/")
    page.get_by_text("Rename / notes").click()
    page.get_by_label("Name", exact=True).fill("Head on frozen VGG16")
    page.get_by_label("Notes").fill("First try: head only.")
    screenshot(page, "manage-experiment-rename-1280")
    page.get_by_role("button", name="Save name and notes").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Head on frozen VGG16")
    expect(page.get_by_text("Experiment Head on frozen VGG16 saved.")).to_be_visible()
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()  # laid out afresh at phone width (the curves would otherwise keep their old width a moment)
    expect(page.get_by_role("paragraph").filter(has_text="First try: head only.")).to_be_visible()
    screenshot(page, "manage-experiment-390")

    page.get_by_role("link", name="Clone with changes").click()
    expect(page.get_by_label("Name", exact=True)).to_have_value("Head on frozen VGG16 (copy)")
    expect(page.get_by_text("The form holds the settings of Head on frozen VGG16")).to_be_visible()
    page.locator("#id_epochs").fill("5")
    screenshot(page, "manage-clone-form-390")
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Head on frozen VGG16 (copy)")
    copy = project.experiments.exclude(pk=experiment.pk).get()
    assert copy.config == {**experiment.config, "epochs": 5}

    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"/projects/{project.pk}/models/")
    page.get_by_role("link", name="Delete model v1").click()
    expect(page.get_by_text(re.compile(r"This deletes its files \(9\xa0bytes\)"))).to_be_visible()
    screenshot(page, "manage-model-delete-1280")
    page.get_by_role("button", name="Delete model v1").click()
    expect(page.get_by_text("Model v1, its files and exports were deleted.")).to_be_visible()
    expect(page.get_by_text("No trained model yet")).to_be_visible()
    assert not storage.model_dir(model.pk).exists()
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "manage-models-after-delete-390")
