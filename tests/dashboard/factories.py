"""Projects, experiments and jobs for dashboard tests; a tiny ready dataset for real training."""

import io
from datetime import timedelta

import numpy as np
from django.utils import timezone
from PIL import Image

from webapp.core import storage
from webapp.experiments.models import Experiment, TrainingJob
from webapp.projects.models import Dataset, DatasetClass, Project

# Many cheap epochs on 32x32 images: a job that runs until the test cancels it.
LONG_SCRATCH = {"mode": "scratch", "weights": "none", "image_size": [32, 32], "epochs": 100, "batch_size": 4}
CLASSES = {"red": (220, 40, 40), "blue": (40, 60, 220)}


def make_project(owner, name="Shapes") -> Project:
    return Project.objects.get_or_create(owner=owner, name=name)[0]


def make_ready_dataset(project, *, per_class: int = 8) -> Dataset:
    """A ready Dataset row plus its files under dataset_dir: {train,validation}/<class>/*.jpg."""
    dataset = Dataset.objects.create(
        project=project,
        version=project.datasets.count() + 1,
        status=Dataset.Status.READY,
        source=Dataset.Source.ZIP,
        content_hash=f"dashboard-test-{project.pk}",
    )
    rng = np.random.default_rng(0)
    root = storage.dataset_dir(dataset.pk)
    for name, colour in CLASSES.items():
        for split, count in (("train", per_class), ("validation", per_class // 2)):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = np.clip(rng.normal(colour, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
                buf = io.BytesIO()
                Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
                (folder / f"{i:03d}.jpg").write_bytes(buf.getvalue())
        DatasetClass.objects.create(dataset=dataset, name=name, train_count=per_class, validation_count=per_class // 2)
    return dataset


def make_experiment(project, *, user=None, name="exp", mode=Experiment.Mode.BOTTLENECK) -> Experiment:
    """An experiment row without files (for jobs whose state the test sets by hand)."""
    dataset = project.datasets.first() or Dataset.objects.create(
        project=project, version=1, status=Dataset.Status.READY, source=Dataset.Source.ZIP, content_hash="x"
    )
    return Experiment.objects.create(
        project=project,
        dataset=dataset,
        name=name,
        mode=mode,
        backbone="vgg16",
        config={"mode": mode, "epochs": 3},
        created_by=user or project.owner,
    )


def make_job(experiment, status=TrainingJob.Status.QUEUED, **fields) -> TrainingJob:
    now = timezone.now()
    if status != TrainingJob.Status.QUEUED:
        fields.setdefault("started_at", now - timedelta(minutes=5))
        fields.setdefault("worker", "w1@host")
    if status == TrainingJob.Status.RUNNING:
        fields.setdefault("heartbeat_at", now)
    if status in TrainingJob.TERMINAL:
        fields.setdefault("finished_at", now)
    fields.setdefault("epochs", 3)
    return TrainingJob.objects.create(experiment=experiment, status=status, **fields)
