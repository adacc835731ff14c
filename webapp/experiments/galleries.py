"""Reads for the error-analysis galleries and the data map: the images behind an experiment's numbers.

An experiment's latest succeeded run scored its test (or validation) images; its record names each
image's file and calibrated probabilities (workers/ml/train.py, "scored"). Runs trained before that
record held them have no galleries. A ready data map of the run's model adds every image of the
dataset, so that a class's gallery can show its training images too (docs/decisions.md, "Error analysis").
"""

from dataclasses import dataclass
from pathlib import PurePosixPath

from django.core.paginator import InvalidPage, Paginator
from django.http import Http404

from .models import DataMap, TrainingJob

PAGE_SIZE = 24


@dataclass(frozen=True)
class GalleryImage:
    path: str  # relative to the dataset folder: <split>/<class>/<file>
    label: str  # the class its folder gives it
    predicted: str
    confidence: float  # the probability of `predicted`
    label_probability: float  # the model's confidence in `label`
    probabilities: tuple  # ((class, p), ...), most probable first

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    @property
    def split(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def correct(self) -> bool:
        return self.label == self.predicted

    @property
    def alt(self) -> str:
        """What a screen reader says for the thumbnail: the file, its label and the model's answer."""
        answer = "right" if self.correct else f"predicted {self.predicted} with {self.confidence:.1%}"
        return f"{self.name}, labelled {self.label}: {answer}, {self.label_probability:.1%} for {self.label}"


def analysed_job(experiment) -> TrainingJob | None:
    """The experiment's newest succeeded run that has a model, or None."""
    return (
        experiment.jobs.with_run_numbers()
        .filter(status=TrainingJob.Status.SUCCEEDED, model__isnull=False)
        .select_related("model")
        .order_by("-created_at", "-pk")
        .first()
    )


def _images(class_names, paths, labels, probabilities) -> list[GalleryImage]:
    images = []
    for path, label, probs in zip(paths, labels, probabilities, strict=True):
        ranked = sorted(zip(class_names, probs, strict=True), key=lambda item: -item[1])
        images.append(
            GalleryImage(
                path=path,
                label=class_names[label],
                predicted=ranked[0][0],
                confidence=float(ranked[0][1]),
                label_probability=float(probs[label]),
                probabilities=tuple((name, float(p)) for name, p in ranked),
            )
        )
    return images


def scored_images(job: TrainingJob | None) -> list[GalleryImage] | None:
    """The run's scored images, or None when its record predates galleries (or there is no run)."""
    result = (job.result or {}) if job else {}
    scored = result.get("scored") or {}
    labels = (result.get("evaluation") or {}).get("labels") or result.get("class_names")
    if not labels or "paths" not in scored or "probabilities" not in scored:
        return None
    return _images(labels, scored["paths"], scored["truth"], scored["probabilities"])


def data_map_for(job: TrainingJob | None) -> DataMap | None:
    if job is None:
        return None
    return DataMap.objects.filter(model=job.model).first()


def map_images(data_map: DataMap | None) -> list[GalleryImage] | None:
    """Every dataset image the ready map scored, or None."""
    if data_map is None or data_map.status != DataMap.Status.READY:
        return None
    r = data_map.result
    return _images(r["class_names"], r["paths"], r["labels"], r["probabilities"])


def cell(images: list[GalleryImage], *, true: str | None, predicted: str | None) -> list[GalleryImage]:
    """A confusion-matrix cell (or a row or column when one side is None), most confident first."""
    chosen = [
        i for i in images if (true is None or i.label == true) and (predicted is None or i.predicted == predicted)
    ]
    return sorted(chosen, key=lambda i: (-i.confidence, i.path))


def mistakes(images: list[GalleryImage]) -> list[GalleryImage]:
    """The wrong answers, most confidently wrong first (where a label error or a blind spot shows)."""
    return sorted((i for i in images if not i.correct), key=lambda i: (-i.confidence, i.path))


def of_class(images: list[GalleryImage], label: str, *, least_confident_first: bool = True) -> list[GalleryImage]:
    """A class's images by the model's confidence in their label; the least confident first by default."""
    sign = 1 if least_confident_first else -1
    return sorted((i for i in images if i.label == label), key=lambda i: (sign * i.label_probability, i.path))


def page_of(items: list, number):
    """One page of PAGE_SIZE (Django's Page); a page that does not exist is a 404."""
    paginator = Paginator(items, PAGE_SIZE)
    try:
        return paginator.page(number or 1)
    except InvalidPage:
        raise Http404(f"No page {number!r}: there are {paginator.num_pages} page(s).") from None


def map_points(data_map: DataMap) -> list[dict]:
    """The ready map as points for the page's chart and its table."""
    r = data_map.result
    images = map_images(data_map)
    return [
        {"x": xy[0], "y": xy[1], "path": i.path, "name": i.name, "label": i.label, "predicted": i.predicted,
         "correct": i.correct, "p": round(i.label_probability, 4), "split": i.split}
        for i, xy in zip(images, r["coordinates"], strict=True)
    ]  # fmt: skip
