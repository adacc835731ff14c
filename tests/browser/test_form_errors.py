import pytest

from .support import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_shows_a_form_error_beside_its_field(signed_in):
    page = signed_in
    page.goto("/projects/new/")
    page.get_by_label("Name").fill("   ")
    page.get_by_role("button", name="Save").click()

    name = page.get_by_label("Name")
    field = page.locator(".field", has=name)
    error = field.locator(".error")
    assert error.is_visible()
    assert "required" in error.inner_text().lower()
    assert name.get_attribute("aria-invalid") == "true"
    # The message is tied to its input, so a screen reader reads it with the field.
    described = (name.get_attribute("aria-describedby") or "").split()
    assert error.get_attribute("id") in described
    screenshot(page, "form-error")


@pytest.fixture
def form_project(user, settings, tmp_path):
    """A project with two ready datasets and a finished bottleneck run on the first (a fine-tune base)."""
    from tests.experiments.factories import make_dataset, make_project
    from webapp.experiments.models import TrainedModel

    from .support import make_finished_experiment

    settings.TL_STORAGE_ROOT = tmp_path / "storage"
    project = make_project(user)
    first, second = make_dataset(project, n_train=2, n_val=1), make_dataset(project, n_train=2, n_val=1)
    base = make_finished_experiment(
        project, first, "Base run", {"mode": "bottleneck", "image_size": [64, 64]}, val_accuracy=[0.8]
    )
    TrainedModel.objects.create(
        project=project, experiment=base, job=base.jobs.get(), version=1, path="models/x", size_bytes=1,
        checksum="0" * 64, class_names=["green", "red"], image_size=[64, 64], backbone="vgg16",
    )  # fmt: skip
    return project, first, second


def test_the_form_follows_the_mode_fills_presets_in_place_and_lists_every_error(signed_in, form_project):
    page = signed_in
    project, first, second = form_project
    url = f"/projects/{project.pk}/experiments/new/"
    page.goto(url)
    visible = lambda label: page.get_by_label(label, exact=True).is_visible()  # noqa: E731

    # Bottleneck: a head, no augmentation, no fine-tune fields, no momentum with rmsprop.
    assert visible("Head units") and not visible("Rotation range") and not visible("Base experiment")
    assert not visible("Momentum") and page.get_by_label("Rotation range", exact=True).is_disabled()
    page.get_by_label("Mode", exact=True).select_option("finetune")
    assert visible("Rotation range") and visible("Base experiment") and visible("Unfreeze")
    assert not visible("Head units") and not visible("Weights")
    page.get_by_label("Optimizer", exact=True).select_option("sgd")
    assert visible("Momentum")
    # Only the base trained on the chosen dataset is offered (the newest dataset is chosen first).
    base = page.locator("#id_base_experiment option", has_text="Base run")
    assert base.is_disabled() and page.locator("#base-none").is_visible()
    page.get_by_label("Dataset", exact=True).select_option(str(first.pk))
    assert base.is_enabled() and not page.locator("#base-none").is_visible()
    page.get_by_label("Base experiment", exact=True).select_option(label=base.inner_text())
    assert page.get_by_label("Image height", exact=True).input_value() == "64"  # a fine-tune keeps its base's size
    screenshot(page, "form-01-finetune-fields")

    # A preset fills the form in place: no reload, the typed name stays.
    page.get_by_label("Name", exact=True).fill("My own name")
    page.get_by_role("link", name="Blog: bottleneck features").click()
    assert page.url.endswith(url)
    assert page.get_by_label("Name", exact=True).input_value() == "My own name"
    assert (
        page.get_by_label("Mode", exact=True).input_value() == "bottleneck"
        and page.get_by_label("Epochs", exact=True).input_value() == "50"
    )
    assert visible("Head units") and not visible("Rotation range")
    page.locator("#estimate-text", has_text="No measurement yet for vgg16 at 150\u00d7150 (bottleneck)").wait_for()

    # Six bad values in one submit: six errors, a summary that takes focus, links that reach their fields.
    for label, value in (
        ("Image height", "10"),
        ("Epochs", "0"),
        ("Batch size", "0"),
        ("Learning rate", "2"),
        ("Head units", "0"),
        ("Head dropout", "1"),
    ):
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Start").click()
    summary = page.locator("#error-summary")
    summary.wait_for()
    assert page.evaluate("document.activeElement.id") == "error-summary"
    items = summary.locator("li")
    assert items.count() == 6, summary.inner_text()
    assert "Image height: must be in [32, 1024], got 10" in summary.inner_text()
    assert "Head dropout: must be in [0, 1), got 1.0" in summary.inner_text()
    assert page.get_by_label("Name", exact=True).input_value() == "My own name"
    screenshot(page, "form-02-error-summary")
    summary.get_by_role("link", name="Head dropout").click()
    assert page.evaluate("document.activeElement.id") == "id_head_dropout"
    field = page.get_by_label("Head dropout", exact=True)
    assert "id_head_dropout_error" in (field.get_attribute("aria-describedby") or "")
    page.set_viewport_size({"width": 390, "height": 844})
    summary.get_by_role("link", name="Epochs").click()
    assert page.evaluate("document.activeElement.id") == "id_epochs"
    screenshot(page, "form-03-error-summary-phone")
