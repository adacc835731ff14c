"""Every page, checked in the browser at a desktop and a phone width: the basics a keyboard or screen-reader
user needs, axe-core's WCAG 2 A/AA rules (static/vendor/axe-core), and nothing wider than the screen."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.experiments.factories import add_export, make_dataset, make_project
from webapp.experiments.models import Experiment, TrainedModel, TrainingJob

from .support import PASSWORD, ROOT, make_finished_experiment, screenshot

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
  if (document.documentElement.scrollWidth > window.innerWidth) {
    const wide = [...document.querySelectorAll("main *")].filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1);
    problems.push("page scrolls sideways (" + document.documentElement.scrollWidth + " > " + window.innerWidth + " px): " + wide.slice(0, 3).map(describe).join(" | "));
  }
  return problems;
}"""


@pytest.fixture(autouse=True)
def private_storage(settings, tmp_path):
    settings.TL_STORAGE_ROOT = tmp_path / "storage"


AXE = ROOT / "static" / "vendor" / "axe-core" / "axe.min.js"
# Run in the page after AXE is injected: WCAG 2 A and AA violations (colour contrast included), each
# with the elements at fault and what is wrong with them.
RUN_AXE = """async () => {
  const result = await axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa"]}, resultTypes: ["violations"]});
  return result.violations.map((v) => `${v.id}: ${v.help} -- ` + v.nodes.slice(0, 4).map(
    (n) => n.target.join(" ") + " [" + (n.failureSummary || "").replace(/\\s+/g, " ").slice(0, 160) + "]").join("; "));
}"""
CHARTS_READABLE = """() => [...document.querySelectorAll("canvas")].every((c) => {
  const box = c.getBoundingClientRect();
  return box.height >= 200 && box.right <= window.innerWidth;
})"""
ZONE = "Europe/Paris"  # the browser's zone: times must come back in it, named "CET" (in November)


def _evaluation(labels):
    return {
        "accuracy": 0.8, "n": 10, "split": "validation", "labels": labels, "macro_f1": 0.79, "balanced_accuracy": 0.8,
        "confusion_matrix": [[4, 1], [1, 4]], "accuracy_ci95": [0.49, 0.94],
        "per_class": {c: {"precision": 0.8, "recall": 0.8, "f1": 0.8, "support": 5} for c in labels},
        "confident_mistakes": [{"path": "validation/red/003.jpg", "true": "red", "predicted": "green", "confidence": 0.91}],
    }  # fmt: skip


def _pages(user):
    """Every page of the app, built from rows (no training), by the name its screenshots carry."""
    project = make_project(user)
    dataset = make_dataset(project, n_train=4, n_val=2)
    config = {"mode": "bottleneck", "image_size": [32, 32], "epochs": 2}
    experiment = make_finished_experiment(project, dataset, "Baseline", config, val_accuracy=[0.6, 0.8])
    other = make_finished_experiment(project, dataset, "Longer", {**config, "epochs": 3}, val_accuracy=[0.5, 0.7, 0.9])
    job = experiment.jobs.get()
    job.result = {**job.result, "evaluation": _evaluation(["green", "red"])}
    job.save(update_fields=["result"])
    model = TrainedModel.objects.create(
        project=project, experiment=experiment, job=job, version=1, path="unused", size_bytes=1000, checksum="0" * 64,
        class_names=["green", "red"], image_size=[32, 32], backbone="vgg16", metrics={"accuracy": 0.8}, published=True,
    )  # fmt: skip
    add_export(model)
    # The dashboard's tables: one run going, one failed.
    scratch = Experiment.objects.create(
        project=project,
        dataset=dataset,
        name="Scratch net",
        mode="scratch",
        backbone="vgg16",
        config={"mode": "scratch"},
    )
    now = timezone.now()
    TrainingJob.objects.create(
        experiment=scratch, status=TrainingJob.Status.FAILED, error="Out of memory at epoch 3.", finished_at=now
    )
    TrainingJob.objects.create(
        experiment=scratch, status=TrainingJob.Status.RUNNING, progress=0.4, phase="training", epoch=2, epochs=5,
        started_at=now - timedelta(minutes=3), heartbeat_at=now,
    )  # fmt: skip
    p, e = project.pk, experiment.pk
    return {
        "projects": "/projects/",
        "project": f"/projects/{p}/",
        "project-edit": f"/projects/{p}/edit/",
        "dataset-upload": f"/projects/{p}/datasets/new/",
        "dataset": f"/datasets/{dataset.pk}/",
        "experiments": f"/projects/{p}/experiments/",
        "experiment-new": f"/projects/{p}/experiments/new/?preset=blog-finetune",
        "experiment": f"/projects/{p}/experiments/{e}/",
        "compare": f"/projects/{p}/compare/?experiment={e}&experiment={other.pk}",
        "models": f"/projects/{p}/models/",
        "account": "/accounts/me/",
        "dashboard": "/dashboard/",
        "404": f"/projects/{p + 1000}/",
    }


def _check(page, name, url, problems):
    """Load `url` once and check it at 1280 and then 390 px: the basics, axe's WCAG 2 A/AA rules, no sideways
    scroll, charts at a readable height; a screenshot at each width."""
    page.set_viewport_size({"width": 1280, "height": 900})
    response = page.goto(url)
    assert response.status == (404 if name == "404" else 200), f"{name} {url}: {response.status}"
    page.wait_for_load_state("networkidle")
    # Closed <details> (the exports menu, thresholds, rename) are checked open, as a user opens them.
    page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    page.add_script_tag(path=str(AXE))
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        found = []
        if page.locator("canvas").count():
            try:  # Chart.js follows its box's new size on the next frames: seconds when the CPUs are busy
                page.wait_for_function(CHARTS_READABLE, timeout=15_000)
            except PlaywrightTimeout:
                sizes = page.eval_on_selector_all("canvas", "(cs) => cs.map((c) => c.getBoundingClientRect().toJSON())")
                found.append(f"charts under 200 px high or wider than the screen: {sizes}")
        found += page.evaluate(AUDIT) + page.evaluate(RUN_AXE)
        if found:
            problems[f"{name} at {width} px"] = found
        screenshot(page, f"18-{name}-{width}")


def test_every_page_passes_axe_and_fits_a_phone(browser, live_server, user):
    user.is_staff = True
    user.save()
    pages = _pages(user)
    context = browser.new_context(base_url=live_server.url, timezone_id=ZONE)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "status of 404" not in m.text else None)
    problems = {}
    try:
        _check(page, "home", "/", problems)
        _check(page, "sign-in", "/accounts/login/", problems)
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/accounts/login/" not in url)
        for name, url in pages.items():
            _check(page, name, url, problems)
        # static/js/timezone.js told the server the browser's zone; times came back in it, named.
        assert {c["name"]: c["value"] for c in context.cookies()}["tz"] == "Europe%2FParis"
        page.goto(pages["projects"])
        created = page.locator("tbody td").last.inner_text()
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d (CET|CEST)", created), created
    finally:
        context.close()
    assert not errors, f"JavaScript errors in the browser: {errors}"
    assert not problems, "\n".join(f"{page_}: {p}" for page_, found in problems.items() for p in found)


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
