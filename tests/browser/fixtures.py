"""Browser fixtures (registered in tests/conftest.py so that one session-scoped browser serves every
folder): Playwright (sync API) driving Debian's Chromium headless against pytest-django's live server.

Playwright's own browser download fails here, so the system Chromium is launched by path
(TL_CHROMIUM overrides it). A missing browser fails the run loudly: these tests are never skipped.
"""

import os
import re

import pytest
from django.contrib.auth import get_user_model

from tests.browser.support import PASSWORD

# Playwright's sync API keeps an asyncio loop in this thread; Django would then refuse ORM calls
# from the test body ("cannot call this from an async context") although nothing here is async.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    path = os.environ.get("TL_CHROMIUM", "/usr/bin/chromium")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(
            f"Chromium not found at {path!r}. The browser tests need Debian's chromium package "
            "(apt-get install chromium; .ci/run installs it) or TL_CHROMIUM=/path/to/chromium.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        try:
            instance = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        except Exception as exc:  # noqa: BLE001 - any launch error: say which browser and why, then fail
            pytest.fail(f"Chromium at {executable!r} did not start: {exc}", pytrace=False)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser context (no cookies) on the live server; console errors fail the test."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and not _expected(msg.text) else None)
    yield tab
    context.close()
    assert not errors, f"JavaScript errors in the browser: {errors}"


def _expected(text: str) -> bool:
    # The browser logs every 4xx answer as a console error; tests that provoke them check the page.
    return bool(re.search(r"status of 4\d\d", text))


@pytest.fixture
def user(transactional_db):
    return get_user_model().objects.create_user("carol", "carol@example.com", PASSWORD)


@pytest.fixture
def signed_in(page, user):
    """`page`, signed in as `user` through the login form."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    return page
