"""The error-analysis workbench in a browser: a confusion cell opens its images, the mistakes show where
the model looked, the map draws every image with its thumbnail on hover, and "Try it" shows the
heatmap; at 1280 and 390 px, each screenshotted (the real tiny model, tests/analysis.py)."""

import pytest

from tests.analysis import analysed_experiment
from tests.trained import shape_png
from webapp.experiments import datamaps
from webapp.experiments.models import DataMap

from .support import ROOT, drop_file, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LOADED = "els => els.length > 0 && els.every(e => e.complete && e.naturalWidth > 0)"
AXE = ROOT / "static" / "vendor" / "axe-core" / "axe.min.js"


def axe_violations(page) -> list[str]:
    """axe-core's WCAG 2 A/AA violations on the page as it is (its <details> opened), each with where."""
    page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    page.add_script_tag(path=str(AXE))
    return page.evaluate(
        """async () => (await axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa"]}}))
        .violations.map((v) => v.id + ": " + v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join("; "))"""
    )


@pytest.fixture(autouse=True)
def private_storage(settings, tmp_path):
    settings.TL_STORAGE_ROOT = tmp_path / "storage"


def test_it_opens_the_images_behind_the_numbers_and_where_the_model_looked(signed_in, user, tiny_model):
    experiment = analysed_experiment(user, tiny_model)
    model = experiment.models.get()
    data_map = DataMap.objects.create(model=model)
    assert datamaps.data_map_run(data_map_id=data_map.pk, worker="test") == "ready"
    page = signed_in

    page.goto(f"/projects/{experiment.project_id}/experiments/{experiment.pk}/")
    page.locator("table.confusion a.cell-link[href*='true=square'][href*='predicted=circle']").click()
    page.wait_for_selector("h1:has-text('Labelled square, predicted circle')")
    items = page.locator("[data-testid=gallery] .gallery-item")
    assert items.count() >= 1
    page.wait_for_function(f"({LOADED})([...document.querySelectorAll('.gallery-item img')])")
    # Each image is a stop for the keyboard, named by its file, label and probability.
    items.first.focus()
    focused = page.evaluate("document.activeElement.querySelector('img').alt")
    assert "labelled square: predicted circle with" in focused
    screenshot(page, "19-cell-gallery-1280")
    problems = {"cell gallery": axe_violations(page)}
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "19-cell-gallery-390")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_role("link", name="Mistakes").click()
    overlays = page.locator("[data-testid=overlay]")
    assert overlays.count() >= 1
    page.wait_for_function(f"({LOADED})([...document.querySelectorAll('[data-testid=overlay]')])", timeout=60_000)
    screenshot(page, "19-mistakes-1280")
    problems["mistakes"] = axe_violations(page)
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "19-mistakes-390")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_role("link", name="Map of the data").click()
    page.wait_for_function("window.Chart && Chart.getChart(document.getElementById('data-map'))")
    # Hover the first point: its thumbnail shows in the tooltip.
    point = page.evaluate(
        "(() => { const c = Chart.getChart(document.getElementById('data-map')); const p = c.getDatasetMeta(0).data[0];"
        " return {x: p.x, y: p.y}; })()"
    )
    box = page.locator("#data-map").bounding_box()
    page.mouse.move(box["x"] + point["x"], box["y"] + point["y"])
    page.wait_for_selector("#map-tooltip:not([hidden]) img")
    page.wait_for_function(f"({LOADED})([...document.querySelectorAll('#map-tooltip img')])")
    screenshot(page, "19-map-by-label-1280")
    page.get_by_label("right or wrong").check()
    legend = page.evaluate("Chart.getChart(document.getElementById('data-map')).data.datasets.map(d => d.label)")
    assert legend == ["right", "wrong"]
    page.get_by_text("The map as a table").click()
    assert page.locator(".map-table tbody tr").count() == 24  # the first page of 51 images
    problems["map"] = axe_violations(page)
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "19-map-390")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.goto(f"/projects/{experiment.project_id}/models/")
    page.get_by_label("Show where the model looked").check()
    drop_file(page, "#try-it .dropzone", shape_png("circle", seed=5), "circle.png", mime="image/png")
    overlay = page.locator("#try-it .try-explanation img")
    overlay.wait_for()
    assert "Where the model looked for" in overlay.get_attribute("alt")
    page.wait_for_function(f"({LOADED})([...document.querySelectorAll('#try-it .try-explanation img')])")
    page.locator("#try-it").scroll_into_view_if_needed()
    screenshot(page, "19-try-it-explain-1280")
    assert not any(problems.values()), problems
