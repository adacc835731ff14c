import shutil
import tempfile
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from tests.helpers import flush_broker, load_launch
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


# --- pytest-xdist (`-n 2`, addopts): test processes that run at the same time share nothing -----

_xdist_resources = pytest.StashKey[tuple]()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config, specs):
    """Before the workers start: each gets a storage root of its own, and each but the first an embedded
    Redis of its own (the first keeps REDIS_URL), as its environment. Tests empty their Redis database
    and count the Celery workers that answer on it, so two test processes on one database would take
    each other's messages. pytest-django gives each worker its own test database (a _gwN suffix)."""
    launch = load_launch()
    folder = Path(tempfile.mkdtemp(prefix="tl-xdist-"))
    supervisor = launch.Supervisor(cwd=folder, log=lambda line: None)
    config.stash[_xdist_resources] = (supervisor, folder)
    for index, spec in enumerate(specs):
        storage = folder / f"storage-{index}"
        storage.mkdir()
        spec.env["TL_STORAGE_ROOT"] = str(storage)
        if index:
            spec.env["REDIS_URL"] = launch.start_embedded_redis(supervisor, folder / f"redis-{index}")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks
def pytest_collection_modifyitems(config, items):
    """Tests that share a module-scoped fixture (a trained model, bin/run, the lock resolutions) run
    in one process, so that it is built once (--dist loadgroup sends a group to one process). Slow
    and browser tests are handed out first, so that no long one starts last while the other process
    has nothing left to do."""
    if not getattr(config.option, "loadgroup", False):
        return
    items.sort(key=lambda item: not (item.get_closest_marker("slow") or item.get_closest_marker("browser")))
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        if fixtures and any(defs[-1].scope == "module" for defs in fixtures.name2fixturedefs.values()):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def pytest_unconfigure(config):
    supervisor, folder = config.stash.get(_xdist_resources, (None, None))
    if supervisor is not None:
        supervisor.stop(grace=5)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def spool(settings, tmp_path):
    """Where Django writes uploaded files while it reads them (upload-limit tests): every byte goes to
    disk, none to memory."""
    folder = tmp_path / "spool"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    return folder


# One Playwright session for the whole run: a second session-scoped browser, started while the
# first is alive, fails ("Sync API inside the asyncio loop").
from tests.browser.fixtures import browser, page, signed_in, user  # noqa: E402,F401
