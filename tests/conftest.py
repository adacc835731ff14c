import pytest
from django.contrib.auth import get_user_model

from tests.helpers import flush_broker
from tests.trained import tiny_model  # noqa: F401  (a session fixture for every test folder)


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", "alice@example.com", "alice-password-1")


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "bob@example.com", "bob-password-1")


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("sam", "sam@example.com", "sam-password-1", is_staff=True)


@pytest.fixture
def clean_broker():
    """An empty Redis database, so that no message from an earlier test reaches this test's worker."""
    flush_broker()
    yield
    flush_broker()


# One Playwright session for the whole run: a second session-scoped browser, started while the
# first is alive, fails ("Sync API inside the asyncio loop").
from tests.browser.fixtures import browser, page, signed_in, user  # noqa: E402,F401
