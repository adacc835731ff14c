import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _django_setup(settings_module: str, **env) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TL_", "AWS_"))}
    full_env.update(DJANGO_SETTINGS_MODULE=settings_module, **env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=full_env, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DJANGO_DEBUG", "maybe"),
        ("TL_ZIP_MAX_ENTRIES", "lots"),
        ("TL_ZIP_MAX_RATIO", "0"),
        ("TL_VALIDATION_FRACTION", "1.5"),
        ("REDIS_URL", "http://example.invalid/"),
        ("TL_WEIGHTS_DIR", "/no/such/folder"),
        ("TL_TRUSTED_PROXIES", "10.0.0.1, proxy.example.com"),
        ("TL_SIGNIN_LIMIT_PER_ACCOUNT", "0"),
        ("TL_STORAGE_URL", "https://bucket.example.com/models"),
        ("TL_STORAGE_URL", "s3://ab/prefix"),
        ("TL_STORAGE_CACHE_BYTES", "0"),
        ("AWS_S3_ENDPOINT_URL", "127.0.0.1:8333"),
    ],
)
def test_it_fails_at_start_naming_the_bad_variable(variable, value):
    result = _django_setup("webapp.settings.test", **{variable: value})
    assert result.returncode != 0
    assert variable in result.stderr.splitlines()[-1]


def test_an_access_key_without_its_secret_fails_at_start_naming_the_missing_one():
    result = _django_setup("webapp.settings.test", TL_STORAGE_URL="s3://transferlab", AWS_ACCESS_KEY_ID="key")
    assert result.returncode != 0
    assert "AWS_SECRET_ACCESS_KEY is not set" in result.stderr.splitlines()[-1]


def test_production_settings_require_a_secret_key():
    result = _django_setup("webapp.settings.base")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr.splitlines()[-1]


def test_debug_is_off_unless_asked():
    code = "from django.conf import settings; print(settings.DEBUG)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_SETTINGS_MODULE="webapp.settings.base", DJANGO_SECRET_KEY="x" * 60)
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup();" + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "False"


def test_check_deploy_shows_only_the_warnings_the_readme_explains():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_SETTINGS_MODULE="webapp.settings.base", DJANGO_SECRET_KEY=secrets.token_urlsafe(50))
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    warnings = {
        line.split(":")[0].strip("?") for line in result.stderr.splitlines() if line.startswith("?: (security.")
    }
    readme = (ROOT / "README.md").read_text()
    assert warnings, result.stderr
    for warning in warnings:
        assert warning.strip("()") in readme, f"{warning} is not explained in the README"


def test_collectstatic_with_production_storage_finds_every_referenced_file(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="webapp.settings.base",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        TL_VAR_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "staticfiles" / "staticfiles.json").exists()


def test_the_wsgi_app_uses_production_settings_and_the_configured_celery_app():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(DJANGO_SECRET_KEY=secrets.token_urlsafe(50), REDIS_URL="redis://127.0.0.1:6379/7")
    code = (
        "import os, webapp.wsgi; from celery import current_app;"
        "print(os.environ['DJANGO_SETTINGS_MODULE'], current_app.main, current_app.conf.broker_url)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.split() == ["webapp.settings.base", "transferlab", "redis://127.0.0.1:6379/7"], result.stderr


@pytest.mark.parametrize(
    "setting",
    ["CSRF_FAILURE_VIEW", "REST_FRAMEWORK['DEFAULT_PARSER_CLASSES'][0]", "REST_FRAMEWORK['EXCEPTION_HANDLER']"],
)
def test_each_dotted_path_in_the_settings_imports_first_in_a_fresh_process(setting):
    # Django's checks import CSRF_FAILURE_VIEW before any URLconf; an import cycle through DRF's
    # settings (errors -> rest_framework.views -> parsers -> errors) once failed only that way.
    code = (
        "import django; django.setup(); from django.conf import settings; "
        f"from django.utils.module_loading import import_string; print(import_string(settings.{setting}))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "TL_"))}
    env["DJANGO_SETTINGS_MODULE"] = "webapp.settings.test"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(("<function", "<class"))
