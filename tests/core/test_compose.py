"""No Docker engine runs here: parse docker-compose.yml and the Dockerfile and check that they start the
processes bin/launch.py declares, by name, so that bin/run and a deployment cannot drift apart."""

import importlib
import importlib.util
import json
import shlex
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

_spec = importlib.util.spec_from_file_location("launch", ROOT / "bin" / "launch.py")
launch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(launch)

LAUNCHER = ["python", "bin/launch.py"]
# As a deployment's environment declares them (the test settings turn the warm queue off for this process).
DECLARED = [process.name for process in launch.app_processes(bind="0.0.0.0:8000", var=Path("/app/var"), environ={})]


def _services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def _app_services() -> dict:
    """The services run from the project's image, by name."""
    return {name: service for name, service in _services().items() if service.get("build") == "."}


def _dockerfile() -> dict[str, list]:
    """Each instruction of the Dockerfile (continuation lines joined) -> its arguments, in order."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions: dict[str, list] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            instructions.setdefault(keyword, []).append(rest.strip())
    return instructions


def test_it_has_every_service_and_the_processes_share_only_the_object_store():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {"setup", *DECLARED, "redis", "postgres", "seaweedfs"} == set(compose["services"])
    assert compose["services"]["seaweedfs"]["image"].startswith("chrislusf/seaweedfs")
    assert "-s3" in compose["services"]["seaweedfs"]["command"]
    volumes = []
    for name, service in _app_services().items():
        env = service["environment"]
        assert env["TL_STORAGE_ROOT"] == "/data", name
        assert env["TL_STORAGE_URL"].startswith("${TL_STORAGE_URL:-s3://"), name
        assert env["AWS_S3_ENDPOINT_URL"] == "${AWS_S3_ENDPOINT_URL:-http://seaweedfs:8333}", name
        assert service["env_file"] == ".env", name
        assert service["depends_on"]["seaweedfs"] == {"condition": "service_healthy"}, name
        volumes += [volume.split(":")[0] for volume in service.get("volumes", [])]
    # Each process's /data is its own local copy: no folder is shared, so any of them can move host.
    assert len(volumes) == len(set(volumes)) == len(DECLARED)


def test_the_env_example_names_every_variable_compose_reads_from_dot_env():
    import re

    used = set(re.findall(r"\$\{([A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))
    example = (ROOT / ".env.example").read_text()
    named = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, flags=re.M))
    assert used <= named, sorted(used - named)


def test_each_process_bin_run_declares_is_one_service_of_that_name_that_serves_it():
    served = {name: service["command"] for name, service in _app_services().items() if name != "setup"}
    assert served == {name: [*LAUNCHER, "serve", name] for name in DECLARED}


def test_setup_runs_once_before_any_process_starts():
    services = _services()
    assert services["setup"]["command"] == [*LAUNCHER, "setup"]
    assert services["setup"]["restart"] == "no"
    for name in DECLARED:
        assert services[name]["depends_on"]["setup"] == {"condition": "service_completed_successfully"}, name
        assert services[name]["restart"] == "unless-stopped", name
    assert {"TL_ADMIN_USERNAME", "TL_ADMIN_PASSWORD"} <= set(services["setup"]["environment"])
    assert ("ensure_storage",) in launch.setup_steps(collectstatic=False), "the bucket exists before any process"


def test_setup_takes_bin_runs_steps_but_collectstatic_which_the_image_build_runs():
    run_steps = launch.setup_steps(collectstatic=True)
    collect = [step for step in run_steps if step[0] == "collectstatic"]
    assert launch.setup_steps(collectstatic=False) == [step for step in run_steps if step not in collect]
    build = " ".join(_dockerfile()["RUN"])
    assert f"python manage.py {shlex.join(collect[0])}" in build


def test_the_image_serves_the_declared_web_process_on_the_port_compose_publishes():
    dockerfile = _dockerfile()
    assert json.loads(dockerfile["CMD"][-1]) == [*LAUNCHER, "serve", "web"]
    env = dict(item.split("=", 1) for line in dockerfile["ENV"] for item in shlex.split(line))
    bind_port = env["TL_BIND"].rsplit(":", 1)[1]
    assert _services()["web"]["ports"] == [f"{bind_port}:{bind_port}"]
    assert dockerfile["EXPOSE"] == [bind_port]
    # The beat schedule and the storage live where the image made room for them, owned by its user.
    assert env["TL_VAR_DIR"] == "/app/var" and env["TL_STORAGE_ROOT"] == "/data"
    assert "mkdir -p /data /app/var" in " ".join(dockerfile["RUN"])


def test_the_declared_processes_point_at_modules_that_exist():
    processes = {p.name: p.argv for p in launch.app_processes(bind="0.0.0.0:8000", var=Path("/app/var"))}
    web = processes["web"]
    module, attr = web[web.index("gunicorn") + 1].split(":")
    assert hasattr(importlib.import_module(module), attr)
    for name in ("training-worker", "default-worker", "beat"):
        argv = processes[name]
        assert argv[1:5] == ("-m", "celery", "-A", "workers.celery")
    assert importlib.import_module("workers.celery").app.main == "transferlab"
    assert "training" in processes["training-worker"] and "--max-tasks-per-child" in processes["training-worker"]


def test_the_dockerfile_installs_the_lock_file():
    dockerfile = _dockerfile()
    assert "pip install -r requirements.txt" in dockerfile["RUN"] and (ROOT / "requirements.txt").exists()
