"""Every page, checked in the browser for the basics a keyboard or screen-reader user needs."""

import re

import pytest

from tests.experiments.factories import make_dataset, make_project
from webapp.experiments.models import TrainedModel

from .support import make_finished_experiment, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Run in the page: a list of problems, each naming the element at fault.
AUDIT = """() => {
  const problems = [];
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const describe = (el) => el.outerHTML.slice(0, 120);
  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    const named = (el.labels && el.labels.length) || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
    if (!named) problems.push("no label: " + describe(el));
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (visible(el) && !(el.innerText.trim() || el.getAttribute("aria-label") || el.title)) problems.push("no name: " + describe(el));
  }
  for (const img of document.querySelectorAll("img")) {
    if (!img.hasAttribute("alt")) problems.push("no alt: " + describe(img));
  }
  for (const canvas of document.querySelectorAll("canvas")) {
    if (!canvas.getAttribute("aria-label")) problems.push("unlabelled chart: " + describe(canvas));
  }
  const ids = {};
  for (const el of document.querySelectorAll("[id]")) {
    if (ids[el.id]) problems.push("duplicate id: " + el.id);
    ids[el.id] = true;
  }
  if (document.querySelectorAll("h1").length !== 1) problems.push("h1 count: " + document.querySelectorAll("h1").length);
  if (!document.documentElement.lang) problems.push("no lang on <html>");
  if (document.documentElement.scrollWidth > window.innerWidth + 1) problems.push("page scrolls sideways");
  return problems;
}"""


@pytest.fixture(autouse=True)
def private_storage(settings, tmp_path):
    settings.TL_STORAGE_ROOT = tmp_path / "storage"


def _pages(user):
    project = make_project(user)
    dataset = make_dataset(project, n_train=4, n_val=2)
    config = {"mode": "bottleneck", "image_size": [32, 32], "epochs": 2}
    experiment = make_finished_experiment(project, dataset, "Baseline", config, val_accuracy=[0.6, 0.8])
    other = make_finished_experiment(project, dataset, "Longer", {**config, "epochs": 3}, val_accuracy=[0.5, 0.7, 0.9])
    job = experiment.jobs.get()
    TrainedModel.objects.create(
        project=project, experiment=experiment, job=job, version=1, path="unused", size_bytes=1000, checksum="0" * 64,
        class_names=["green", "red"], image_size=[32, 32], backbone="vgg16", metrics={"accuracy": 0.8},
    )  # fmt: skip
    p, e = project.pk, experiment.pk
    return {
        "home": "/",
        "projects": "/projects/",
        "project": f"/projects/{p}/",
        "project-edit": f"/projects/{p}/edit/",
        "project-delete": f"/projects/{p}/delete/",
        "dataset-upload": f"/projects/{p}/datasets/new/",
        "dataset": f"/datasets/{dataset.pk}/",
        "experiments": f"/projects/{p}/experiments/",
        "experiment-new": f"/projects/{p}/experiments/new/?preset=blog-finetune",
        "experiment": f"/projects/{p}/experiments/{e}/",
        "models": f"/projects/{p}/models/",
        "compare": f"/projects/{p}/compare/?experiment={e}&experiment={other.pk}",
        "account": "/accounts/me/",
        "dashboard": "/dashboard/",
    }


@pytest.mark.parametrize("width", [1280, 390])
def test_every_page_has_labels_names_and_no_sideways_scroll(signed_in, user, width):
    user.is_staff = True
    user.save()
    page = signed_in
    page.set_viewport_size({"width": width, "height": 900})
    problems = {}
    for name, url in _pages(user).items():
        response = page.goto(url)
        assert response.ok, f"{name} {url}: {response.status}"
        page.wait_for_load_state("networkidle")
        found = page.evaluate(AUDIT)
        if found:
            problems[name] = found
        if width < 600:
            screenshot(page, f"phone-{name}")
    assert not problems, problems


def test_the_main_controls_work_from_the_keyboard(signed_in, user):
    page = signed_in
    page.goto("/projects/")
    page.keyboard.press("Tab")
    skip = page.locator(":focus")
    assert skip.inner_text() == "Skip to content"
    assert skip.is_visible()
    page.keyboard.press("Enter")
    # Tab onwards to "New project" and open it without a mouse.
    for _ in range(15):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == "New project":
            break
    page.keyboard.press("Enter")
    page.wait_for_url("**/projects/new/")
    for _ in range(15):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "id_name":
            break
    page.keyboard.type("Typed project")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/projects/\d+/$"))
    assert page.get_by_role("heading", name="Typed project").is_visible()
