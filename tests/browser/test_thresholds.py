"""The models page's threshold slider, from the keyboard: the figures follow it, Save stores it, and
"try it" (the predict endpoint) answers "not accepted" below it and "accepted" from it on."""

import io
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.predictions.conftest import make_model
from tests.trained import COLOURS
from workers.ml.stats import at_threshold

from .support import drop_file, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _shape_in_colour(shape: str, colour: str, seed: int) -> bytes:
    image = Image.fromarray(np.random.default_rng(seed).integers(0, 90, (32, 32, 3), dtype=np.uint8))
    draw, fill = ImageDraw.Draw(image), COLOURS[colour]
    if shape == "circle":
        draw.ellipse([8, 8, 24, 24], fill=fill)
    elif shape == "square":
        draw.rectangle([8, 8, 24, 24], fill=fill)
    else:
        draw.polygon([(16, 8), (8, 24), (24, 24)], fill=fill)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _ambiguous_image(loaded) -> tuple[bytes, float]:
    """Of shapes drawn in another shape's colour, the one the tiny model is least sure of."""
    candidates = [
        _shape_in_colour(shape, colour, seed)
        for shape in COLOURS
        for colour in COLOURS
        if colour != shape
        for seed in range(8)
    ]
    confidences = loaded.predict(candidates).max(axis=1)
    best = int(np.argmin(confidences))
    return candidates[best], float(confidences[best])


def _figures(curve, threshold: float) -> str:
    """The sentence the page shows for `threshold` (static/js/threshold.js), from the engine's own sums."""
    e = at_threshold(curve, threshold)
    precision = "— (no image answered)" if e["precision"] is None else f"{e['precision']:.1%}"
    return (
        f"At {threshold:.1%}: precision {precision}, recall {e['recall']:.1%}, coverage {e['coverage']:.1%} "
        f"({e['accepted']} of {len(curve)} validation images answered)."
    )


def test_the_threshold_slider_shows_its_effect_saves_and_predict_follows(signed_in, user, tiny_model):
    from webapp.projects.models import Project

    image, confidence = _ambiguous_image(tiny_model["loaded"])
    assert 0.1 < confidence < 0.95, f"no probe image is ambiguous to the tiny model (the least sure: {confidence})"
    # Validation images around the probe's confidence: at most 80% precision, from `low` (<= the probe) on.
    low = math.floor(confidence * 100) / 100
    curve = [[0.99, 0.0], [0.98, 1.0], [0.97, 1.0], [low, 1.0], [low, 1.0], [round(low / 2, 6), 0.0]]
    project = Project.objects.create(owner=user, name="Shapes")
    model = make_model(project, tiny_model, published=True, curve=curve)
    page = signed_in
    page.goto(f"/projects/{project.pk}/models/")

    slider = page.get_by_role("slider", name=f"Confidence threshold of model v{model.version}")
    figures = page.locator(f"#threshold-figures-{model.pk}")
    assert figures.inner_text() == _figures(curve, 0)
    # Page Up moves 10 points: stop at the first multiple of 10% above the probe's confidence.
    slider.focus()
    steps = math.floor(confidence * 10) + 1
    for _ in range(steps):
        page.keyboard.press("PageUp")
    high = steps / 10
    assert figures.inner_text() == _figures(curve, high)
    assert slider.get_attribute("aria-valuetext") == f"{high:.1%}"
    page.keyboard.press("ArrowDown")
    assert figures.inner_text() == _figures(curve, round(high - 0.01, 6))
    page.keyboard.press("ArrowUp")
    assert figures.inner_text() == _figures(curve, high)

    page.keyboard.press("Tab")  # to the target precision field: nothing saved by the moves
    model.refresh_from_db()
    assert model.threshold is None
    page.get_by_role("button", name="Save threshold").press("Enter")
    page.get_by_text(f"now accepts predictions from {high:.1%} confidence").wait_for()
    model.refresh_from_db()
    assert model.threshold == pytest.approx(high)
    assert page.locator(f"#threshold-{model.pk} summary").inner_text().endswith(f"threshold: {high:.1%}")

    drop_file(page, "#try-it .dropzone", image, "unsure.png", mime="image/png")
    page.locator("#try-it .try-verdict.unknown").wait_for()
    assert f"below the model's {100 * high:.1f} % threshold" in page.locator("#try-it .try-verdict").inner_text()
    screenshot(page, "09-threshold-not-accepted")

    # A target precision moves the slider to the lowest threshold reaching it; Enter does not save.
    target = page.get_by_label(f"Target precision (%) for model v{model.version}")
    target.fill("80")
    target.press("Enter")
    assert figures.inner_text() == _figures(curve, low)
    assert slider.get_attribute("aria-valuetext") == f"{low:.1%}"
    model.refresh_from_db()
    assert model.threshold == pytest.approx(high)
    target.fill("90")
    page.get_by_role("button", name="Find threshold").click()
    assert page.get_by_role("alert").filter(has_text="No threshold reaches").inner_text() == (
        f"No threshold reaches 90.0% precision on these 6 validation images; the most is 80.0%, at threshold {low:.1%}."
    )
    assert figures.inner_text() == _figures(curve, low)  # the slider stayed where it was

    page.get_by_role("button", name="Save threshold").click()
    page.get_by_text(f"now accepts predictions from {low:.1%} confidence").wait_for()
    model.refresh_from_db()
    assert model.threshold == low
    drop_file(page, "#try-it .dropzone", image, "unsure.png", mime="image/png")
    page.locator("#try-it .try-verdict.accepted").wait_for()
    page.locator(f"#threshold-{model.pk}").scroll_into_view_if_needed()
    screenshot(page, "09b-threshold-accepted")
