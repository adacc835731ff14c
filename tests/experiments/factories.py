"""Tiny projects and ready datasets written straight under storage (no ingest involved), and the rows and
files a finished run leaves (no training involved)."""

import io

import numpy as np
from PIL import Image, ImageDraw

from webapp.core import storage
from webapp.experiments.models import EpochMetric, Experiment, TrainedModel, TrainingJob
from webapp.projects.models import Dataset, DatasetClass, Project

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60)}

BOTTLENECK = {
    "mode": "bottleneck",
    "backbone": "vgg16",
    "weights": "none",
    "image_size": [32, 32],
    "epochs": 2,
    "batch_size": 8,
    "head": {"units": 16, "dropout": 0.1},
}
# Many cheap epochs: long enough to cancel or kill mid-training, stopped by the test.
LONG_SCRATCH = {"mode": "scratch", "image_size": [32, 32], "epochs": 1000, "batch_size": 4}
# A fine-tune of a BOTTLENECK run: the base fixes the backbone's weights and the head.
FINETUNE = {"mode": "finetune", "backbone": "vgg16", "image_size": [32, 32], "epochs": 1, "batch_size": 8}


def make_project(owner, name="Shapes") -> Project:
    return Project.objects.create(owner=owner, name=name)


def _image(colour, rng, size=32) -> bytes:
    image = Image.fromarray(rng.integers(0, 90, (size, size, 3), dtype=np.uint8))
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
    ImageDraw.Draw(image).ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_dataset(project, *, status=Dataset.Status.READY, n_train=16, n_val=6, seed=0, version=None) -> Dataset:
    """A dataset row plus its files: train/<class>/ and validation/<class>/ of 32x32 JPEGs."""
    version = version or (project.datasets.count() + 1)
    dataset = Dataset.objects.create(
        project=project,
        version=version,
        status=status,
        source=Dataset.Source.ZIP,
        content_hash=f"test-{seed}-{version}",
    )
    rng = np.random.default_rng(seed)
    root = storage.dataset_dir(dataset.pk)
    for name, colour in COLOURS.items():
        for split, count in (("train", n_train), ("validation", n_val)):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (folder / f"{i:03d}.jpg").write_bytes(_image(colour, rng))
        DatasetClass.objects.create(dataset=dataset, name=name, train_count=n_train, validation_count=n_val)
    return dataset


def make_run(
    project,
    dataset,
    *,
    name="Bottleneck",
    status=TrainingJob.Status.SUCCEEDED,
    model=True,
    base=None,
    mode="bottleneck",
):
    """An experiment (BOTTLENECK's config, or FINETUNE's from `base`, stored as the service stores it)
    with one run in `status`, its epoch metrics and checkpoint folder, and (when it succeeded and
    `model`) a model whose folder holds a file, as training leaves them."""
    from workers.ml.config import config_to_dict, parse_config

    config = config_to_dict(parse_config(BOTTLENECK if mode == "bottleneck" else FINETUNE))
    if base is not None:
        config["base_experiment"] = base.pk
    experiment = Experiment.objects.create(
        project=project, dataset=dataset, name=name, mode=mode, backbone="vgg16", base_experiment=base, config=config
    )
    job = TrainingJob.objects.create(experiment=experiment, status=status, epochs=2)
    EpochMetric.objects.create(job=job, epoch=1, loss=0.5, accuracy=0.7, val_loss=0.6, val_accuracy=0.65)
    storage.atomic_write_bytes(storage.checkpoint_dir(job.pk) / "epoch-0001" / "state.json", b"{}")
    if model and status == TrainingJob.Status.SUCCEEDED:
        version = TrainedModel.objects.filter(project=project).count() + 1
        row = TrainedModel.objects.create(
            project=project, experiment=experiment, job=job, version=version, path="", size_bytes=9,
            checksum="0" * 64, class_names=["green", "red"], image_size=[32, 32], backbone="vgg16",
        )  # fmt: skip
        row.path = storage.key_of(storage.model_dir(row.pk))
        row.save(update_fields=["path"])
        storage.atomic_write_bytes(storage.model_dir(row.pk) / "model.keras", b"weights")
    return experiment


def add_export(model: TrainedModel):
    """A ready export of `model` with its folder."""
    from webapp.exports.models import ModelExport

    export = ModelExport.objects.create(model=model, format="keras", status="ready")
    storage.atomic_write_bytes(storage.export_dir(export.pk) / "bundle.zip", b"zip")
    return export
