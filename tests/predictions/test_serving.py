import subprocess
import sys
import threading
import time
from types import SimpleNamespace

from tests.helpers import ROOT, subprocess_env
from webapp.predictions.serving import ModelCache


def _row(pk, size=100):
    return SimpleNamespace(pk=pk, files_dir=f"/models/{pk}", checksum=f"sum{pk}", size_bytes=size)


class _Loader:
    def __init__(self, delay=0.0):
        self.calls = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, path, checksum):
        with self.lock:
            self.calls.append(str(path))
        time.sleep(self.delay)
        return object()


def test_it_loads_a_model_once_when_many_threads_ask_first():
    loader = _Loader(delay=0.3)
    cache = ModelCache(max_models=4, max_bytes=10**9, memory_factor=1.0, loader=loader)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(_row(1)))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loader.calls == ["/models/1"]
    assert len(got) == 8 and all(g is got[0] for g in got)


def test_it_loads_different_models_in_parallel():
    loader = _Loader(delay=0.4)
    cache = ModelCache(max_models=4, max_bytes=10**9, memory_factor=1.0, loader=loader)
    started = time.perf_counter()
    threads = [threading.Thread(target=cache.get, args=(_row(pk),)) for pk in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.perf_counter() - started < 1.0
    assert sorted(cache.model_ids()) == [1, 2, 3]


def test_it_drops_the_least_recently_used_model_past_the_count_bound():
    loader = _Loader()
    cache = ModelCache(max_models=2, max_bytes=10**9, memory_factor=1.0, loader=loader)
    one = cache.get(_row(1))
    cache.get(_row(2))
    assert cache.get(_row(1)) is one  # 1 is now the most recently used
    cache.get(_row(3))
    assert cache.model_ids() == [1, 3]
    cache.get(_row(2))
    assert len(loader.calls) == 4  # 2 was dropped, so it loaded again


def test_it_drops_models_past_the_memory_bound():
    cache = ModelCache(max_models=10, max_bytes=1000, memory_factor=1.5, loader=_Loader())
    cache.get(_row(1, size=400))  # 600 estimated
    cache.get(_row(2, size=200))  # 300: 900 in all
    assert cache.model_ids() == [1, 2] and cache.total_bytes() == 900
    cache.get(_row(3, size=200))
    assert cache.model_ids() == [2, 3]
    cache.get(_row(4, size=2000))  # alone over the bound, still served
    assert cache.model_ids() == [4]


def test_it_does_not_cache_a_failed_load():
    calls = []

    def failing(path, checksum):
        calls.append(path)
        raise ValueError("bad file")

    cache = ModelCache(max_models=2, max_bytes=10**9, memory_factor=1.0, loader=failing)
    for _ in range(2):
        try:
            cache.get(_row(1))
        except ValueError:
            pass
    assert len(calls) == 2 and cache.model_ids() == []


def test_it_keeps_tensorflow_out_of_the_web_process_until_a_prediction():
    code = (
        "import sys, django; django.setup()\n"
        "from django.test import Client\n"
        "import webapp.urls, webapp.api_urls, webapp.predictions.services, webapp.predictions.admin\n"
        "assert Client(HTTP_HOST='localhost').get('/api/v1/schema/').status_code == 200\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
