"""How long an experiment would take on this server, from the speed its finished runs measured.

A succeeded job's result keeps the engine's timings (workers/ml/fit.py and modes/bottleneck.py):
seconds of training, epochs trained and images per epoch, and for a bottleneck run the seconds
and images of feature extraction. Speed depends on the mode, the backbone and the image size,
so it is measured per (mode, backbone, size) and never borrowed from another combination
(docs/decisions.md, "Duration estimates from measured speed").
"""

from dataclasses import dataclass

from webapp.core.formatting import format_duration

from .models import TrainingJob

RECENT = 20  # the latest succeeded runs of a combination that its speed is averaged over


@dataclass(frozen=True)
class Speed:
    """Images per second through a training epoch (forward, backward and validation) and through
    feature extraction (bottleneck only; None when no run extracted), over ``runs`` runs."""

    epoch_images_per_s: float | None
    extract_images_per_s: float | None
    runs: int


def measured_speed(*, mode: str, backbone: str, image_size: list[int]) -> Speed | None:
    """The speed this server measured for ``mode`` with ``backbone`` at ``image_size``; None if unmeasured."""
    jobs = TrainingJob.objects.filter(
        status=TrainingJob.Status.SUCCEEDED, experiment__mode=mode, result__timings__has_key="images_per_epoch"
    )
    if mode != "scratch":  # the small convnet has no backbone: any stored name is the default's
        jobs = jobs.filter(experiment__backbone=backbone)
    rows = jobs.order_by("-finished_at", "-pk").values_list("result__timings", "experiment__config__image_size")
    runs = [t for t, size in rows[: RECENT * 5] if list(size or []) == list(image_size)][:RECENT]
    if not runs:
        return None
    trained = sum(t["epochs_trained"] * t["images_per_epoch"] for t in runs)
    training_s = sum(t.get("training_s") or 0 for t in runs)
    extracted = sum(t.get("extracted_images") or 0 for t in runs)
    extraction_s = sum(t.get("feature_extraction_s") or 0 for t in runs if t.get("extracted_images"))
    return Speed(
        epoch_images_per_s=trained / training_s if trained and training_s > 0 else None,
        extract_images_per_s=extracted / extraction_s if extracted and extraction_s > 0 else None,
        runs=len(runs),
    )


def _what(mode: str, backbone: str, image_size: list[int]) -> str:
    model = "the small convnet" if mode == "scratch" else backbone
    return f"{model} at {image_size[0]}\u00d7{image_size[1]} ({mode})"


def duration_estimate(*, mode: str, backbone: str, image_size: list[int], epochs: int, images: int) -> dict:
    """{"seconds": float | None, "text": str}: ``epochs`` over ``images`` (training plus validation)
    at the measured speed, plus feature extraction for a bottleneck run; the text says what it
    rests on, or that nothing was measured yet."""
    what = _what(mode, backbone, image_size)
    speed = measured_speed(mode=mode, backbone=backbone, image_size=image_size)
    if speed is None or speed.epoch_images_per_s is None or (mode == "bottleneck" and not speed.extract_images_per_s):
        return {
            "seconds": None,
            "text": f"No measurement yet for {what} on this server: the first such run measures its speed.",
        }
    seconds = epochs * images / speed.epoch_images_per_s
    parts = [f"{speed.epoch_images_per_s:.0f} images/s per epoch"]
    if mode == "bottleneck":
        seconds += images / speed.extract_images_per_s
        parts.insert(0, f"{speed.extract_images_per_s:.0f} images/s extracting features (less if they are cached)")
    runs = f"{speed.runs} finished run{'s' if speed.runs != 1 else ''}"
    return {
        "seconds": seconds,
        "text": f"About {format_duration(seconds)} for {epochs} epochs over {images} images: this server measured "
        f"{' and '.join(parts)} for {what} over its last {runs}.",
    }


def estimate_from_query(*, project, query) -> dict:
    """The estimate for the new-experiment form's current values (a GET query of its fields), or
    what is missing for one."""
    from django.db.models import Sum

    from workers.ml.options import MODES, option

    try:
        mode = query["mode"]
        size = [int(query["image_height"]), int(query["image_width"])]
        epochs = int(query["epochs"])
        dataset = project.datasets.get(pk=int(query["dataset"]), status="ready")
    except (KeyError, TypeError, ValueError, project.datasets.model.DoesNotExist):
        mode, size, epochs = None, [0, 0], 0
    if mode not in MODES or min(size) < 1 or epochs < 1:
        return {"seconds": None, "text": "An estimate needs a ready dataset, a mode, an image size and epochs."}
    counts = dataset.classes.aggregate(train=Sum("train_count"), validation=Sum("validation_count"))
    images = (counts["train"] or 0) + (counts["validation"] or 0)
    backbone = query.get("backbone") or option("backbone").default
    return duration_estimate(mode=mode, backbone=backbone, image_size=size, epochs=epochs, images=images)
