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
