"""The augmentation preview on the new-experiment form: a few training images as the chosen
ImageDataGenerator options transform them. TensorFlow loads lazily, on the first preview."""

import base64
import io

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from webapp.core import objectstore, storage
from webapp.projects.models import Dataset
from webapp.projects.selectors import project_for_user

from . import selectors
from .forms import AUGMENTATION_FIELDS, ExperimentForm

PREVIEW_CLASSES = 4
PREVIEW_COPIES = 4
PREVIEW_MAX_SIDE = 160


def _sample_images(dataset: Dataset) -> list:
    """The first training image (by name) of each of the first classes: the same every time."""
    # With an object store this host fetches the dataset once (docs/architecture.md, "Object storage").
    train = objectstore.fetch(storage.key_of(storage.dataset_dir(dataset.pk))) / "train"
    paths = []
    for class_dir in sorted(p for p in train.iterdir() if p.is_dir())[:PREVIEW_CLASSES]:
        first = next(iter(sorted(p for p in class_dir.iterdir() if p.is_file())), None)
        if first is not None:
            paths.append(first)
    return paths


def _png_data_uri(array) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@login_required
@require_GET
def augmentation_preview(request, project_id):
    project = project_for_user(request.user, project_id)
    datasets = project.datasets.filter(status=Dataset.Status.READY)
    bases = selectors.bottleneck_bases_for_project(project)
    params = request.GET.copy()
    # Options left out of the request take the form's defaults (no shift, no zoom, "nearest", ...).
    defaults = ExperimentForm(project=project, datasets=datasets, bases=bases).fields
    for key in AUGMENTATION_FIELDS:
        if key not in params and defaults[key].initial is not None:
            params[key] = defaults[key].initial
    form = ExperimentForm(params, project=project, datasets=datasets, bases=bases)
    form.is_valid()  # only the dataset, size and augmentation fields matter here
    errors = [f"{form[k].label}: {' '.join(form.errors[k])}" for k in AUGMENTATION_FIELDS if k in form.errors]
    dataset = form.cleaned_data.get("dataset")
    if dataset is None:
        errors.append("Pick a ready dataset to preview its images.")
    if errors:
        return render(request, "experiments/_augmentation_preview.html", {"errors": errors})
    data = form.cleaned_data
    augmentation = {k: data[k] for k in AUGMENTATION_FIELDS if data.get(k) is not None}
    side = lambda k: min(int(data.get(k) or 150), PREVIEW_MAX_SIDE)  # noqa: E731
    from workers.ml.errors import ConfigError
    from workers.ml.preview import augmentation_preview as preview

    try:
        rows = preview(
            image_paths=_sample_images(dataset),
            augmentation=augmentation,
            image_size=(side("image_height"), side("image_width")),
            copies=PREVIEW_COPIES,
            seed=int(data.get("seed") or 0),
        )
    except ConfigError as exc:
        return render(request, "experiments/_augmentation_preview.html", {"errors": [str(exc)]})
    images = [[_png_data_uri(image) for image in row] for row in rows]
    return render(request, "experiments/_augmentation_preview.html", {"rows": images, "copies": PREVIEW_COPIES})
