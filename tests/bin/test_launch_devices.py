"""bin/run's training workers per TL_WORKER_DEVICE: the CPU queue always, one GPU worker per GPU."""

import importlib.util

import pytest

from tests.helpers import ROOT

_spec = importlib.util.spec_from_file_location("launch_devices", ROOT / "bin" / "launch.py")
launch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(launch)


def _queue(process) -> str:
    return process.argv[process.argv.index("-Q") + 1]


def test_by_default_one_cpu_training_worker_serves_the_training_queue_with_gpus_hidden():
    (worker,) = launch.training_workers({})
    assert worker.name == "training-worker" and _queue(worker) == "training"
    assert dict(worker.env) == {"TL_WORKER_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    assert worker.argv[worker.argv.index("--max-tasks-per-child") + 1] == "1"


def test_a_gpu_machine_gets_one_worker_per_gpu_on_training_gpu_each_seeing_its_own():
    cpu, gpu0, gpu2 = launch.training_workers({"TL_WORKER_DEVICE": "gpu", "TL_GPUS": "0, 2"})
    assert _queue(cpu) == "training"
    assert [(w.name, _queue(w), dict(w.env)) for w in (gpu0, gpu2)] == [
        ("training-gpu0-worker", "training-gpu", {"TL_WORKER_DEVICE": "gpu", "CUDA_VISIBLE_DEVICES": "0"}),
        ("training-gpu2-worker", "training-gpu", {"TL_WORKER_DEVICE": "gpu", "CUDA_VISIBLE_DEVICES": "2"}),
    ]
    assert gpu2.argv[gpu2.argv.index("-n") + 1] == "training-gpu2@%h"


def test_it_refuses_gpu_workers_when_no_gpu_is_found(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi
    with pytest.raises(SystemExit, match=r"TL_WORKER_DEVICE=gpu but no GPU was found .* TL_GPUS=0,1"):
        launch.training_workers({"TL_WORKER_DEVICE": "gpu"})


def test_it_refuses_an_unknown_device():
    with pytest.raises(SystemExit, match="TL_WORKER_DEVICE='tpu' must be cpu or gpu"):
        launch.training_workers({"TL_WORKER_DEVICE": "tpu"})


def test_serve_sets_the_declared_environment_before_it_becomes_the_worker(monkeypatch, tmp_path):
    monkeypatch.setenv("TL_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("TL_WORKER_DEVICE", "cpu")  # restored after: serve sets both
    seen = []
    monkeypatch.setattr(launch.os, "execv", lambda path, argv: seen.append(launch.os.environ["CUDA_VISIBLE_DEVICES"]))
    monkeypatch.setattr(launch.os, "chdir", lambda path: None)
    launch.main(["serve", "training-worker"])
    assert seen == [""]


def test_a_warm_worker_serves_head_only_jobs_on_its_own_queue_with_gpus_hidden():
    (warm,) = launch.warm_worker({})
    assert (warm.name, _queue(warm)) == ("warm-worker", "training-warm")
    assert dict(warm.env) == {"TL_WORKER_DEVICE": "cpu", "CUDA_VISIBLE_DEVICES": "", "TL_WORKER_WARM": "1"}
    # Its child is not replaced after each job: its settings give Celery TL_WARM_MAX_JOBS and TL_WARM_MAX_MB.
    assert "--max-tasks-per-child" not in warm.argv and warm.argv[warm.argv.index("-c") + 1] == "1"
    assert _queue(launch.warm_worker({"TL_WARM_QUEUE": "heads"})[0]) == "heads"
    assert launch.warm_worker({"TL_WARM_QUEUE": " "}) == []


def test_run_starts_the_warm_worker_unless_its_queue_is_turned_off(tmp_path):
    names = [p.name for p in launch.app_processes(bind="x", var=tmp_path, environ={})]
    assert names[:2] == ["training-worker", "warm-worker"]
    off = launch.app_processes(bind="x", var=tmp_path, environ={"TL_WARM_QUEUE": ""})
    assert "warm-worker" not in [p.name for p in off]


def test_the_warm_queue_default_is_the_settings_default():
    import re

    source = (ROOT / "webapp" / "settings" / "base.py").read_text()
    assert re.search(r'env_str\("TL_WARM_QUEUE", "([^"]+)"\)', source).group(1) == launch.WARM_QUEUE
