"""The models page's Export menu: start an export, watch it become ready through a real worker, read its
figures, copy its snippet, and find the download."""

import pytest

from tests.exports.conftest import write_dataset_files
from tests.helpers import celery_worker
from tests.predictions.conftest import make_model
from webapp.core import storage
from webapp.exports.models import ModelExport
from workers.ml.export import snippet_for

from .support import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_an_export_started_on_the_models_page_shows_its_figures_snippet_and_download(
    signed_in, user, tiny_model, clean_broker
):
    from webapp.projects.models import Project

    project = Project.objects.create(owner=user, name="Shapes")
    model = make_model(project, tiny_model)
    write_dataset_files(model.experiment.dataset)
    page = signed_in
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    try:
        with celery_worker("browser-exports", queues="default"):
            page.goto(f"/projects/{project.pk}/models/")
            page.get_by_role("button", name=f"Export model v{model.version} as Keras 3 (.keras)").click()
            page.get_by_text("it is verified before it is offered").wait_for()
            keras = page.locator(f"#export-menu-{model.pk} [data-format=keras]")
            assert keras.locator(".badge").inner_text() in ("queued", "running", "ready")
            keras.locator(".badge.ready").wait_for(timeout=180_000)  # the menu polls until then
        export = ModelExport.objects.get(model=model, format="keras")
        figures = keras.locator(".export-figures").inner_text()
        assert "12 validation images" in figures and "100.0%" in figures and "ms per image" in figures
        download = keras.get_by_role("link", name=f"Download Keras 3 (.keras) of model v{model.version}")
        assert download.get_attribute("href") == f"/api/v1/exports/{export.pk}/download/"

        keras.get_by_text("Python snippet").click()
        assert keras.locator("pre code").inner_text().strip() == snippet_for("keras").strip()
        keras.get_by_role("button", name="Copy the Keras 3 (.keras) snippet").click()
        keras.get_by_role("button", name="Copied").wait_for()
        assert page.evaluate("navigator.clipboard.readText()").strip() == snippet_for("keras").strip()
        page.locator(f"#exports-{model.pk}").scroll_into_view_if_needed()
        screenshot(page, "16-exports-1280")
        page.set_viewport_size({"width": 390, "height": 844})
        page.locator(f"#exports-{model.pk}").scroll_into_view_if_needed()
        screenshot(page, "16-exports-390")
    finally:
        storage.remove(storage.dataset_dir(model.experiment.dataset_id))
        for export in ModelExport.objects.filter(model=model):
            storage.remove(storage.export_dir(export.pk))
