import pytest

from tests.experiments.factories import make_dataset, make_project

from .support import make_finished_experiment, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PLAIN = {
    "mode": "bottleneck",
    "image_size": [150, 150],
    "epochs": 4,
    "head": {"units": 256, "dropout": 0.5},
    "augmentation": {"rotation_range": 0.0, "horizontal_flip": False},
}


@pytest.fixture(autouse=True)
def private_storage(settings, tmp_path):
    settings.TL_STORAGE_ROOT = tmp_path / "storage"


def test_it_overlays_picked_experiments_and_lists_how_their_configs_differ(signed_in, user):
    project = make_project(user)
    dataset = make_dataset(project, n_train=1, n_val=1)
    make_finished_experiment(project, dataset, "Plain", PLAIN, val_accuracy=[0.6, 0.7, 0.75, 0.8])
    flipped = {
        **PLAIN,
        "augmentation": {"rotation_range": 30, "horizontal_flip": True},
        "head": {"units": 64, "dropout": 0.5},
    }
    make_finished_experiment(project, dataset, "Flipped", flipped, val_accuracy=[0.55, 0.72, 0.84, 0.9])
    make_finished_experiment(project, dataset, "Left out", PLAIN, val_accuracy=[0.5])
    page = signed_in

    page.goto(f"/projects/{project.pk}/experiments/")
    page.get_by_role("link", name="Compare").click()
    page.get_by_label("Plain").check()
    page.keyboard.press("Tab")
    page.get_by_label("Flipped").check()
    page.get_by_role("button", name="Compare").click()

    diff = page.locator("#compare-diff")
    keys = diff.locator("tbody th").all_inner_texts()
    assert keys == ["augmentation.horizontal_flip", "augmentation.rotation_range", "head.units"]
    # Columns follow the list: newest first.
    assert diff.locator("thead th").all_inner_texts()[1:] == ["Flipped", "Plain"]
    assert diff.locator("tbody tr").first.locator("td").all_inner_texts() == ["true", "false"]
    metrics = page.locator("#compare-metrics tbody tr")
    assert metrics.count() == 2
    assert "90.0%" in metrics.nth(0).inner_text() and "80.0%" in metrics.nth(1).inner_text()
    # Both charts drew one solid (training) and one dashed (validation) line per experiment.
    drawn = page.evaluate("['compare-loss', 'compare-accuracy'].map((id) => Chart.getChart(id).data.datasets.length)")
    assert drawn == [4, 4]
    assert page.get_by_label("Plain").is_checked() and not page.get_by_label("Left out").is_checked()
    screenshot(page, "08-compare")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "08b-compare-phone")
