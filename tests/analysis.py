"""An experiment whose run scored real images with the real tiny model (tests/trained.py): the rows and
files the error-analysis galleries, the map and the overlays read. Three validation circles are filed
under "square", so the run has mistakes, as a mislabelled upload would."""

import hashlib

import numpy as np

from tests.trained import CLASSES, copy_model_files, shape_png
from webapp.core import storage
from webapp.experiments.models import Experiment, TrainedModel, TrainingJob
from webapp.projects.models import Dataset, DatasetClass, Project

TRAIN, VALIDATION, MISFILED = 6, 10, 3


def _write_dataset(project: Project) -> tuple[Dataset, list[str], list[int]]:
    """A ready dataset in storage; returns it with its validation paths and labels (split, class, file order)."""
    dataset = Dataset.objects.create(
        project=project, version=project.datasets.count() + 1, status=Dataset.Status.READY,
        source=Dataset.Source.ZIP, content_hash=f"analysis-{project.pk}",
    )  # fmt: skip
    root = storage.dataset_dir(dataset.pk)
    files: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
    for c, name in enumerate(CLASSES):
        files[("train", name)] = [(f"{i:02d}.png", shape_png(name, seed=7000 + 100 * c + i)) for i in range(TRAIN)]
        files[("validation", name)] = [
            (f"{i:02d}.png", shape_png(name, seed=8000 + 100 * c + i)) for i in range(VALIDATION)
        ]
    # Misfiled: circles in the validation folder of squares.
    files[("validation", "square")] += [(f"m{i}.png", shape_png("circle", seed=9000 + i)) for i in range(MISFILED)]
    paths, labels = [], []
    for (split, name), entries in sorted(files.items(), key=lambda kv: (kv[0][0], CLASSES.index(kv[0][1]))):
        for file, data in sorted(entries):
            storage.atomic_write_bytes(root / split / name / file, data)
            if split == "validation":
                paths.append(f"validation/{name}/{file}")
                labels.append(CLASSES.index(name))
    for name in CLASSES:
        DatasetClass.objects.create(
            dataset=dataset, name=name, train_count=TRAIN, validation_count=len(files[("validation", name)])
        )
    return dataset, paths, labels


def analysed_experiment(owner, tiny_model, *, name="Shapes") -> Experiment:
    """A project, its dataset and one succeeded run of the tiny model that scored the validation images."""
    from workers.ml.evaluate import evaluate

    project = Project.objects.create(owner=owner, name=name)
    dataset, paths, labels = _write_dataset(project)
    root = storage.dataset_dir(dataset.pk)
    probs = tiny_model["loaded"].predict([(root / p).read_bytes() for p in paths])
    evaluation = evaluate(probs, np.array(labels), CLASSES, paths)
    evaluation["split"] = "validation"
    scored = {
        "split": "validation",
        "images": hashlib.sha256("\n".join(paths).encode()).hexdigest(),
        "truth": labels,
        "predicted": probs.argmax(axis=1).tolist(),
        "paths": paths,
        "probabilities": np.round(probs, 4).tolist(),
    }
    experiment = Experiment.objects.create(
        project=project, dataset=dataset, name="tiny", mode="bottleneck", backbone="vgg16",
        config={"mode": "bottleneck", "image_size": [32, 32], "epochs": 6},
    )  # fmt: skip
    job = TrainingJob.objects.create(
        experiment=experiment, status=TrainingJob.Status.SUCCEEDED, progress=1.0, epoch=6, epochs=6,
        result={"evaluation": evaluation, "scored": scored, "class_names": CLASSES},
    )  # fmt: skip
    TrainedModel.objects.create(
        project=project, experiment=experiment, job=job, version=1, path=storage.key_of(copy_model_files(tiny_model, "tiny-analysed")),
        size_bytes=tiny_model["size_bytes"], checksum=tiny_model["checksum"], class_names=CLASSES,
        image_size=[32, 32], backbone="vgg16",
    )  # fmt: skip
    return experiment
