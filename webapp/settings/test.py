"""Test settings: DATABASE_URL and REDIS_URL come from the test command (.ci/run, bin/test)."""

import os
import tempfile

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-not-secret")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "0")
# Head-only jobs stay on `training`, the queue test workers serve; tests of the warm worker turn it on
# for themselves (tests/experiments/test_warm_worker.py).
os.environ.setdefault("TL_WARM_QUEUE", "")
os.environ.setdefault("TL_STORAGE_ROOT", tempfile.mkdtemp(prefix="tl-test-storage-"))

from .base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_AUTOREFRESH = True

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so that worker and server subprocesses started by tests share it; one per
    # pytest process so that two test runs in one checkout do not delete each other's database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
# Worker subprocesses started by tests are pointed at the test database by name.
if os.environ.get("TL_TEST_DATABASE_NAME"):
    DATABASES["default"]["NAME"] = os.environ["TL_TEST_DATABASE_NAME"]
