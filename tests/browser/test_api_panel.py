"""The project page's API panel: a token filled in on request, and commands that work when pasted
into bash, against the live server, with the answer predict gives."""

import json
import subprocess

import pytest

from tests.predictions.conftest import make_model
from tests.trained import shape_png

from .support import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_commands_work_when_pasted_once_a_token_is_filled_in(signed_in, user, tiny_model, tmp_path):
    from webapp.accounts.models import ApiToken
    from webapp.projects.models import Project

    project = Project.objects.create(owner=user, name="Shapes")
    make_model(project, tiny_model, published=True)
    page = signed_in
    page.goto(f"/projects/{project.pk}/")
    panel = page.locator("#predict-api")
    assert page.locator("#api-cmd-token").inner_text() == "export TL_TOKEN='paste-your-token-here'"

    panel.get_by_role("button", name="Create a token and fill it in").click()
    panel.get_by_text("is filled in below").wait_for()
    token_line = page.locator("#api-cmd-token").inner_text()
    key = token_line.removeprefix("export TL_TOKEN='").removesuffix("'")
    assert len(key) > 30 and ApiToken.objects.filter(user=user, prefix=key[:8]).exists()
    screenshot(page, "18-api-panel-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    # Nothing runs off the right edge on a phone: each command wraps inside its card.
    for name in ("api-cmd-token", "api-cmd-multipart", "api-cmd-json"):
        box, card = page.locator(f"#{name}").bounding_box(), panel.bounding_box()
        assert box["x"] + box["width"] <= card["x"] + card["width"] + 1, name
    screenshot(page, "18-api-panel-390")

    (tmp_path / "photo.jpg").write_bytes(shape_png("circle", seed=4242, fmt="JPEG"))
    expected = tiny_model["loaded"].predict([(tmp_path / "photo.jpg").read_bytes()])[0]
    for name in ("api-cmd-multipart", "api-cmd-json"):
        # What a user pastes: the token line, then the command, exactly as the page shows them.
        script = page.locator("#api-cmd-token").inner_text() + "\n" + page.locator(f"#{name}").inner_text()
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script + " -sS --fail-with-body"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, (name, done.stderr, done.stdout)
        answer = json.loads(done.stdout)["predictions"][0]
        assert answer["probabilities"] == pytest.approx(
            dict(zip(tiny_model["class_names"], expected.tolist(), strict=True))
        )
