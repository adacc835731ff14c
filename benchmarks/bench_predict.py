"""Predict latency, throughput and memory: HTTP through gunicorn on loopback vs the same model in-process.

    .venv/bin/python benchmarks/bench_predict.py [--size 64] [--requests 40] [--batches 6]

Everything runs against a temporary SQLite database and storage folder. A VGG16 (weights "none",
bottleneck mode) is trained on generated shapes at --size pixels, registered as five models in
five projects, each published, then a gunicorn worker (1 process, 4 threads) serves them. Figures:
- one image: p50/p95 latency of POST /api/v1/projects/{id}/predict/ vs check_image + LoadedModel.predict
  in this process (the same Pillow checks and the same model files), sent with requests; then requests
  alternated with http.client, whose difference is what the client library itself costs;
- batches of 16: images per second both ways;
- the gunicorn worker's RSS at start (no TensorFlow yet), with 1 and with 5 models loaded;
- where the serving overhead goes (--breakdown N requests, 0 skips it): the same one-image request through
  the WSGI app in this process with the model call replaced by its answer, in thread CPU time per request
  by part (token auth, throttle, lookups, parsing, checks, log row, rendering, the rest of Django and DRF).
Needs Redis for the throttle counters (REDIS_URL, default redis://127.0.0.1:6379/5); the throttle
is set out of reach.
"""

import argparse
import http.client
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MODELS = 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def _configure(tmp: Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="webapp.settings.base",
        DJANGO_SECRET_KEY="bench-only",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DATABASE_URL=f"sqlite:///{tmp / 'bench.sqlite3'}",
        TL_VAR_DIR=str(tmp / "var"),
        TL_STORAGE_ROOT=str(tmp / "storage"),
        TL_PREDICT_THROTTLE="1000000/minute",
        TL_SERVING_MAX_MODELS=str(MODELS + 1),
        TL_LOG_LEVEL="WARNING",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/5")


def _train(tmp: Path, size: int) -> tuple[Path, str, int, list[str]]:
    from benchmarks.datagen import make_dataset
    from webapp.core import storage
    from workers.ml.config import parse_config
    from workers.ml.train import train

    data = make_dataset(tmp / "shapes", classes=3, train=20, validation=6, size=size)
    config = parse_config(
        {"mode": "bottleneck", "weights": "none", "image_size": [size, size], "epochs": 4, "batch_size": 16,
         "head": {"units": 32}}
    )  # fmt: skip
    output = storage.models_root() / "bench-source"
    result = train(config=config, dataset_dir=data, output_dir=output, cache_dir=tmp / "features", dataset_hash="b")
    return output, result.sha256, result.model_bytes, result.class_names


def _register(source: Path, checksum: str, size_bytes: int, class_names: list[str], size: int):
    """One user, MODELS projects, each with its own copy of the model published; returns (token, project ids)."""
    from django.contrib.auth import get_user_model

    from webapp.accounts.services import api_token_create
    from webapp.core import storage
    from webapp.experiments.models import Experiment, TrainedModel, TrainingJob
    from webapp.projects.models import Dataset, Project

    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    projects = []
    for i in range(MODELS):
        project = Project.objects.create(owner=user, name=f"bench {i}")
        dataset = Dataset.objects.create(project=project, version=1, status="ready", source="zip")
        experiment = Experiment.objects.create(
            project=project, dataset=dataset, name="bench", mode="bottleneck", backbone="vgg16", config={}
        )
        job = TrainingJob.objects.create(experiment=experiment, status="succeeded", progress=1.0)
        model = TrainedModel.objects.create(
            project=project, experiment=experiment, job=job, version=1, path="", size_bytes=size_bytes,
            checksum=checksum, class_names=class_names, image_size=[size, size], backbone="vgg16",
            published=True,
        )  # fmt: skip
        folder = storage.model_dir(model.pk)
        shutil.copytree(source, folder)
        TrainedModel.objects.filter(pk=model.pk).update(path=storage.key_of(folder))
        projects.append(project.pk)
    return api_token_create(user=user)[1], projects


def _start_gunicorn(port: int, log: Path) -> subprocess.Popen:
    cmd = [
        str(Path(sys.executable).parent / "gunicorn"), "webapp.wsgi:application", "--bind", f"127.0.0.1:{port}",
        "--workers", "1", "--threads", "4", "--timeout", "300", "--chdir", str(ROOT),
    ]  # fmt: skip
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/api/v1/schema/", timeout=5).status_code == 200:
                return proc
        except requests.RequestException:
            time.sleep(0.3)
        if proc.poll() is not None:
            break
    raise RuntimeError(f"gunicorn did not start:\n{log.read_text()[-3000:]}")


def _worker_rss_mb(master: subprocess.Popen) -> float:
    import psutil

    workers = psutil.Process(master.pid).children()
    return sum(w.memory_info().rss for w in workers) / 2**20


def _server_breakdown(project_id: int, token: str, image: bytes, requests_count: int) -> dict[str, float]:
    """CPU ms per one-image predict request by part, the WSGI app called in this process with the model call
    replaced by its answer: the serving overhead alone (issue 20, point 7). Thread CPU time, which the
    other processes of a shared machine move far less than wall time."""
    import django.core.handlers.base as handler_base
    from rest_framework.request import Request
    from rest_framework.response import Response
    from urllib3 import encode_multipart_formdata

    from webapp.accounts.authentication import ApiTokenAuthentication
    from webapp.predictions import selectors, services
    from webapp.predictions.throttles import PredictRateThrottle
    from workers.ml.predict import LoadedModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # WhiteNoise: the temporary folder has no collected static files
        from webapp.wsgi import application

    body, content_type = encode_multipart_formdata([("image", ("0.jpg", image, "image/jpeg"))])
    path = f"/api/v1/projects/{project_id}/predict/"

    def request() -> None:
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1",
            "HTTP_AUTHORIZATION": f"Token {token}", "HTTP_ACCEPT": "*/*", "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": False,
            "wsgi.run_once": False, "wsgi.version": (1, 0),
        }  # fmt: skip
        status = []
        answer = application(environ, lambda line, headers, exc_info=None: status.append(line))
        b"".join(answer)
        answer.close()  # as a WSGI server does: Django's request_finished
        if not status[0].startswith("200"):
            raise RuntimeError(f"in-process predict answered {status[0]}")

    parts = {
        "token auth (1 query)": (ApiTokenAuthentication, "authenticate"),
        "throttle (1 Redis round trip)": (PredictRateThrottle, "allow_request"),
        "project lookup (1 query)": (selectors, "project_for_predict"),
        "published model lookup (1 query)": (selectors, "published_model_for_project"),
        "multipart parsing": (Request, "_load_data_and_files"),
        "image checks and decoding": (services, "images_check"),
        "answer, model call excluded": (services, "predict_images"),
        "log row (1 insert)": (services, "prediction_log_create"),
        "JSON rendering": (Response, "render"),
        "URL resolving": (handler_base.BaseHandler, "resolve_request"),
    }
    spent = dict.fromkeys(parts, 0.0)
    originals = [(owner, name, getattr(owner, name)) for owner, name in parts.values()]
    original_run, answers = LoadedModel.run, {}

    def timed(label, function):
        def wrapper(*args, **kwargs):
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] += time.thread_time() - started

        return wrapper

    def known_answer(self, batch):
        if len(batch) not in answers:
            answers[len(batch)] = original_run(self, batch)
        return answers[len(batch)]

    request()  # loads the model into this process's serving cache
    LoadedModel.run = known_answer
    try:
        for _ in range(20):
            request()
        for label, (owner, name) in parts.items():
            setattr(owner, name, timed(label, getattr(owner, name)))
        started = time.thread_time()
        for _ in range(requests_count):
            request()
        whole = time.thread_time() - started
    finally:
        LoadedModel.run = original_run
        for owner, name, function in originals:
            setattr(owner, name, function)
    figures = {label: seconds * 1000 / requests_count for label, seconds in spent.items()}
    figures["the rest: Django, middleware, DRF"] = (whole - sum(spent.values())) * 1000 / requests_count
    figures["whole request"] = whole * 1000 / requests_count
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="image size the model is trained and served at")
    parser.add_argument("--requests", type=int, default=40, help="one-image requests to time")
    parser.add_argument("--batches", type=int, default=6, help="batches of 16 to time")
    parser.add_argument(
        "--breakdown", type=int, default=300, help="in-process requests to split the overhead by part (0: skip)"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tl-bench-predict-"))
    _configure(tmp)
    import django

    django.setup()
    import numpy as np
    import requests
    from django.core.management import call_command
    from urllib3 import encode_multipart_formdata

    from benchmarks.datagen import _draw
    from webapp.predictions.images import check_image
    from workers.ml.predict import LoadedModel

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    source, checksum, size_bytes, class_names = _train(tmp, args.size)
    print(f"trained a {args.size}x{args.size} VGG16 (weights none, {size_bytes / 2**20:.0f} MB file) "
          f"in {time.perf_counter() - started:.0f} s")  # fmt: skip
    token, projects = _register(source, checksum, size_bytes, class_names, args.size)

    import random

    rng = random.Random(1)
    images = []
    for i in range(32):
        buffer = io.BytesIO()
        _draw(["ellipse", "rectangle", "triangle"][i % 3], args.size, rng).save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())

    port = _free_port()
    server = _start_gunicorn(port, tmp / "gunicorn.log")
    figures = {}
    try:
        figures["rss_start"] = _worker_rss_mb(server)
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        base = f"http://127.0.0.1:{port}/api/v1/projects"

        def http_predict(project_id, batch):
            files = [("image", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(batch)]
            response = session.post(f"{base}/{project_id}/predict/", files=files, timeout=300)
            response.raise_for_status()
            return response.json()

        first = time.perf_counter()
        http_predict(projects[0], images[:1])
        figures["first_http_s"] = time.perf_counter() - first
        for _ in range(3):
            http_predict(projects[0], images[:1])
        figures["rss_1"] = _worker_rss_mb(server)

        loaded = LoadedModel.load(source, expected_sha256=checksum)

        def local_predict(batch):
            size = (args.size, args.size)
            arrays = [check_image(d, image_size=size, max_bytes=10**8, max_pixels=10**8).array for d in batch]
            return loaded.run(np.stack(arrays))

        for _ in range(3):
            local_predict(images[:1])

        http_ms, local_ms = [], []
        for i in range(args.requests):
            one = [images[i % len(images)]]
            t = time.perf_counter()
            body = http_predict(projects[0], one)
            http_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            probs = local_predict(one)
            local_ms.append((time.perf_counter() - t) * 1000)
            assert body["predictions"][0]["label"] == class_names[int(np.argmax(probs[0]))]
        figures["http_p50"], figures["http_p95"] = _percentile(http_ms, 50), _percentile(http_ms, 95)
        figures["local_p50"], figures["local_p95"] = _percentile(local_ms, 50), _percentile(local_ms, 95)

        # The same request from a lean client (http.client on one keep-alive connection, the body encoded per
        # call as requests does), alternated with requests: what the client library adds to the HTTP figure.
        lean = http.client.HTTPConnection("127.0.0.1", port, timeout=300)

        def lean_predict(project_id, batch):
            body, content_type = encode_multipart_formdata(
                [("image", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(batch)]
            )
            headers = {"Authorization": f"Token {token}", "Content-Type": content_type}
            lean.request("POST", f"/api/v1/projects/{project_id}/predict/", body=body, headers=headers)
            response = lean.getresponse()
            answer = response.read()
            if response.status != 200:
                raise RuntimeError(f"predict answered {response.status}: {answer[:300]!r}")
            return json.loads(answer)

        client_ms, lean_ms = [], []
        for i in range(args.requests):
            one = [images[i % len(images)]]
            t = time.perf_counter()
            http_predict(projects[0], one)
            client_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            lean_predict(projects[0], one)
            lean_ms.append((time.perf_counter() - t) * 1000)
        lean.close()
        figures["requests_p50"], figures["lean_p50"] = _percentile(client_ms, 50), _percentile(lean_ms, 50)

        batch = images[:16]
        http_predict(projects[0], batch)
        local_predict(batch)
        t = time.perf_counter()
        for _ in range(args.batches):
            http_predict(projects[0], batch)
        figures["http_ips"] = 16 * args.batches / (time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(args.batches):
            local_predict(batch)
        figures["local_ips"] = 16 * args.batches / (time.perf_counter() - t)

        for project_id in projects[1:]:
            http_predict(project_id, images[:1])
        figures["rss_5"] = _worker_rss_mb(server)
        if args.breakdown:
            figures["breakdown"] = _server_breakdown(projects[0], token, images[0], args.breakdown)
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)

    f = figures
    rows = [
        ("one image, p50 latency", f"{f['http_p50']:.1f} ms", f"{f['local_p50']:.1f} ms", f["http_p50"] / f["local_p50"]),
        ("one image, p95 latency", f"{f['http_p95']:.1f} ms", f"{f['local_p95']:.1f} ms", f["http_p95"] / f["local_p95"]),
        ("batch of 16, throughput", f"{f['http_ips']:.1f} img/s", f"{f['local_ips']:.1f} img/s", f["local_ips"] / f["http_ips"]),
    ]  # fmt: skip
    print(f"\n{'measure':<26}{'HTTP (gunicorn)':>18}{'in-process':>16}{'HTTP cost':>11}")
    for name, over_http, local, ratio in rows:
        print(f"{name:<26}{over_http:>18}{local:>16}{ratio:>10.2f}x")
    print(f"one image over HTTP, p50, requests vs http.client alternated: {f['requests_p50']:.1f} vs {f['lean_p50']:.1f} ms "
          f"(the client library: {f['requests_p50'] - f['lean_p50']:.1f} ms)")  # fmt: skip
    print(f"\nfirst request (loads TensorFlow and the model): {f['first_http_s']:.1f} s")
    print(f"gunicorn worker RSS: {f['rss_start']:.0f} MB at start (no TensorFlow), {f['rss_1']:.0f} MB with 1 model, "
          f"{f['rss_5']:.0f} MB with {MODELS} models ({(f['rss_5'] - f['rss_1']) / (MODELS - 1):.0f} MB per extra "
          f"model of {size_bytes / 2**20:.0f} MB on disk)")  # fmt: skip
    if "breakdown" in f:
        print(f"\nserver side of one-image predict, model call excluded ({args.breakdown} requests through the WSGI "
              "app in this process, thread CPU ms per request):")  # fmt: skip
        for label, ms in f["breakdown"].items():
            print(f"  {label:<36}{ms:>7.3f}")
    print(f"({args.requests} one-image requests, {args.batches} batches of 16, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
