"""Serving trust and memory: evaluated vs served answers of the same models, and a web worker's peak RSS.

    .venv/bin/python benchmarks/bench_serving.py [--size 150] [--classes 5] [--train 60] [--validation 20]
                                                 [--epochs 10] [--finetune-epochs 3] [--weights none]

Runs the app's real path against a temporary SQLite database and storage folder:
1. a generated dataset (shapes at --size px, every third file a PNG, the rest JPEG) is imported by the
   ingest service; a bottleneck experiment (the "Blog: bottleneck" preset, --epochs) and then a fine-tune
   of it (the "Blog: fine-tune" preset: shear 11.46 degrees, zoom 0.2, flips, SGD 1e-4, block5,
   --finetune-epochs) are trained by the job runner, round trip included;
2. both models are published in turn and every validation file is sent to a gunicorn worker over HTTP:
   the evaluation's accuracy and confusion matrix (measured on the test split) are printed beside the
   HTTP ones over the same files;
3. the fine-tune's accuracy against its base, as the experiment page shows it;
4. the gunicorn worker's RSS before and during the break-it request (32 blank 6300x6300 PNGs), and
   during a request of two such images, which is within the per-request pixel budget.
--weights imagenet needs the VGG16 file in TL_WEIGHTS_DIR or Keras's cache (no download here).
Needs Redis (REDIS_URL, default redis://127.0.0.1:6379/5).
"""

import argparse
import base64
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_predict import _configure, _free_port, _start_gunicorn  # noqa: E402


def _dataset(root: Path, args) -> Path:
    import random

    from benchmarks.datagen import SHAPES, _draw

    rng = random.Random(0)
    n = 0
    for split, count in (("train", args.train), ("validation", args.validation)):
        for shape in SHAPES[: args.classes]:
            folder = root / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image, n = _draw(shape, args.size, rng), n + 1
                if n % 3 == 0:
                    image.save(folder / f"{i:04d}.png")
                else:
                    image.save(folder / f"{i:04d}.jpg", quality=rng.choice([75, 90, 95]))
    return root


def _train(project, dataset, user, name, config):
    from webapp.experiments import services

    started = time.perf_counter()
    experiment = services.experiment_create(project=project, dataset=dataset, config=config, name=name, user=user)
    job = experiment.jobs.get()
    outcome = services.training_job_run(job_id=job.pk, worker_hostname="bench")
    job.refresh_from_db()
    if outcome != "succeeded":
        raise SystemExit(f"{name}: {outcome}: {job.error}")
    print(f"{name}: trained in {time.perf_counter() - started:.0f} s, round trip {job.result['round_trip']}")
    return experiment, job


def _served(session, url, files: dict[str, bytes], labels: list[str]) -> list[list[int]]:
    names = sorted(files)
    matrix = [[0] * len(labels) for _ in labels]
    for start in range(0, len(names), 16):
        batch = names[start : start + 16]
        body = {"instances": [{"b64": base64.b64encode(files[k]).decode()} for k in batch]}
        response = session.post(url, json=body, timeout=300)
        response.raise_for_status()
        for name, prediction in zip(batch, response.json()["predictions"], strict=True):
            matrix[labels.index(name.split("/")[1])][labels.index(prediction["label"])] += 1
    return matrix


def _peak_rss_mb(server, send) -> tuple[float, object]:
    import psutil

    workers = psutil.Process(server.pid).children()
    peak, done = [0.0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], sum(w.memory_info().rss for w in workers) / 2**20)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = send()
    finally:
        done.set()
        watcher.join()
    return peak[0], result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=150)
    parser.add_argument("--classes", type=int, default=5)
    parser.add_argument("--train", type=int, default=60, help="training images per class")
    parser.add_argument("--validation", type=int, default=20, help="validation images per class")
    parser.add_argument("--epochs", type=int, default=10, help="bottleneck epochs (the preset has 50)")
    parser.add_argument("--finetune-epochs", type=int, default=3, help="fine-tune epochs (the preset has 50)")
    parser.add_argument("--weights", choices=["none", "imagenet"], default="none")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tl-bench-serving-"))
    _configure(tmp)
    import django

    django.setup()
    import requests
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from PIL import Image

    from webapp.accounts.services import api_token_create
    from webapp.core import storage
    from webapp.experiments.forms import BLOG_SHEAR_DEGREES
    from webapp.experiments.selectors import versus_base
    from webapp.experiments.services import trained_model_publish
    from webapp.projects.datasets import dataset_import_path
    from webapp.projects.models import Project

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    project = Project.objects.create(owner=user, name="bench serving")
    source = _dataset(tmp / "upload", args)
    dataset = dataset_import_path(project=project, path=source, user=user)
    print(f"dataset: {dataset.stats['train']} train / {dataset.stats['validation']} validation images, "
          f"{args.classes} classes at {args.size} px, weights {args.weights}")  # fmt: skip

    size = [args.size, args.size]
    bottleneck = {"mode": "bottleneck", "weights": args.weights, "image_size": size, "epochs": args.epochs,
                  "batch_size": 16, "optimizer": "rmsprop", "learning_rate": 1e-3,
                  "head": {"units": 256, "dropout": 0.5}}  # fmt: skip
    base_experiment, base_job = _train(project, dataset, user, "bottleneck", bottleneck)
    finetune = {"mode": "finetune", "image_size": size, "epochs": args.finetune_epochs, "batch_size": 16,
                "optimizer": "sgd", "learning_rate": 1e-4, "momentum": 0.9, "unfreeze": ["block5"],
                "base_experiment": base_experiment.pk,
                "augmentation": {"shear_range": BLOG_SHEAR_DEGREES, "zoom_range": 0.2, "horizontal_flip": True}}  # fmt: skip
    _, tune_job = _train(project, dataset, user, "fine-tune", finetune)

    # The files the evaluation scored (the test split carved at ingest, else validation), as stored:
    # the user's own bytes.
    split = base_job.result["evaluation"]["split"]
    stored = storage.dataset_dir(dataset.pk)
    files = {p.relative_to(stored).as_posix(): p.read_bytes() for p in sorted((stored / split).glob("*/*"))}
    print(f"scored on the {split} split: {len(files)} images")
    port = _free_port()
    server = _start_gunicorn(port, tmp / "gunicorn.log")
    try:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {api_token_create(user=user)[1]}"
        url = f"http://127.0.0.1:{port}/api/v1/projects/{project.pk}/predict/"
        print("\n| model | evaluation accuracy | HTTP accuracy | same confusion matrix |")
        print("| --- | ---: | ---: | --- |")
        for name, job in (("bottleneck", base_job), ("fine-tune", tune_job)):
            trained_model_publish(model=job.model)
            evaluation = job.result["evaluation"]
            matrix = _served(session, url, files, evaluation["labels"])
            http = sum(matrix[i][i] for i in range(len(matrix))) / len(files)
            same = matrix == evaluation["confusion_matrix"]
            print(f"| {name} | {evaluation['accuracy']:.4f} | {http:.4f} | {'yes' if same else 'NO'} |")
        print(f"\nfine-tune vs its base: {versus_base(tune_job)['summary']}")
        print(
            "\n| model | test accuracy [95%] | best epoch's validation accuracy | macro-F1 [95%] | T | ECE before → after |"
        )
        print("| --- | --- | ---: | --- | ---: | --- |")
        for name, job in (("bottleneck", base_job), ("fine-tune", tune_job)):
            e, best = job.result["evaluation"], job.result["history"][job.result["best_epoch"] - 1]
            c = e["calibration"]
            print(
                f"| {name} | {e['accuracy']:.3f} [{e['accuracy_ci95'][0]:.3f}, {e['accuracy_ci95'][1]:.3f}] "
                f"| {best['val_accuracy']:.3f} | {e['macro_f1']:.3f} [{e['macro_f1_ci95'][0]:.3f}, "
                f"{e['macro_f1_ci95'][1]:.3f}] | {c['temperature']:.2f} | {c['ece_before']:.3f} → {c['ece_after']:.3f} |"
            )

        buffer = io.BytesIO()
        Image.new("1", (6300, 6300)).save(buffer, format="PNG", optimize=True)
        blank = buffer.getvalue()
        session.post(url, json={"instances": [{"b64": base64.b64encode(files[sorted(files)[0]]).decode()}]})
        rss_before, _ = _peak_rss_mb(server, lambda: None)

        def post(n):
            return lambda: session.post(url, files=[("image", (f"{i}.png", blank, "image/png")) for i in range(n)])

        peak32, response32 = _peak_rss_mb(server, post(32))
        peak2, response2 = _peak_rss_mb(server, post(2))
        print(f"\nweb worker RSS: {rss_before:.0f} MB with the model loaded")
        print(f"32 blank 6300x6300 PNGs ({32 * len(blank) / 1024:.0f} KiB): HTTP {response32.status_code}, "
              f"peak {peak32:.0f} MB ({response32.json()['detail'][:90]}...)")  # fmt: skip
        print(f"2 of them (within the budget): HTTP {response2.status_code}, peak {peak2:.0f} MB")
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)


if __name__ == "__main__":
    main()
