"""No Docker engine runs here: parse the compose file and check that it points at real things."""

import importlib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_it_has_every_service_and_one_shared_storage_volume():
    compose = _compose()
    assert {"web", "worker", "beat", "redis", "postgres"} <= set(compose["services"])
    for name in ("web", "worker", "worker-default", "beat", "migrate"):
        service = compose["services"][name]
        assert service["build"] == "."
        assert "storage:/data" in service["volumes"]
        assert service["environment"]["TL_STORAGE_ROOT"] == "/data"
    assert "storage" in compose["volumes"]


def test_each_command_points_at_modules_that_exist():
    services = _compose()["services"]
    web = services["web"]["command"]
    module, attr = web[web.index("gunicorn") + 1].split(":")
    assert hasattr(importlib.import_module(module), attr)
    for name in ("worker", "worker-default", "beat"):
        command = services[name]["command"]
        assert command[:3] == ["celery", "-A", "workers.celery"]
        assert importlib.import_module("workers.celery").app.main == "transferlab"
    assert "training" in services["worker"]["command"] and "--max-tasks-per-child" in services["worker"]["command"]
    assert (ROOT / "manage.py").exists() and "manage.py" in services["migrate"]["command"]


def test_the_dockerfile_installs_the_lock_file():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements.txt" in dockerfile and (ROOT / "requirements.txt").exists()
    assert "FROM python:3.11" in dockerfile
