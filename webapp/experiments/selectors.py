"""Reads shaped for the experiment pages and the API. Another user's objects are not found (404)."""

from django.db.models import Max, OuterRef, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from webapp.core.formatting import format_percent, format_points

from .checkpoints import checkpoint_epoch
from .models import EpochMetric, Experiment, TrainedModel, TrainingJob


def _latest_job(field: str):
    return Subquery(
        TrainingJob.objects.filter(experiment=OuterRef("pk")).order_by("-created_at", "-pk").values(field)[:1]
    )


def experiments_for_project(project):
    """The project's experiments with their latest job's state, best val accuracy and duration.

    One query: the latest job's fields and its best epoch come from subqueries, not per row.
    """
    best = (
        EpochMetric.objects.filter(job_id=OuterRef("latest_job_id"))
        .values("job_id")
        .annotate(best=Max("val_accuracy"))
        .values("best")
    )
    rows = (
        Experiment.objects.filter(project=project)
        .select_related("dataset", "base_experiment")
        .annotate(
            latest_job_id=_latest_job("pk"),
            latest_status=_latest_job("status"),
            latest_progress=_latest_job("progress"),
            latest_started_at=_latest_job("started_at"),
            latest_finished_at=_latest_job("finished_at"),
        )
        .annotate(best_val_accuracy=Subquery(best[:1]))
        .order_by("-created_at")
    )
    now = timezone.now()
    rows = list(rows)
    for row in rows:
        start, end = row.latest_started_at, row.latest_finished_at
        row.duration = (end or now) - start if start else None
    return rows


# The states in which a run may still change; the pages that show runs poll while one is in them.
ACTIVE = (TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING)


def project_has_active_runs(project) -> bool:
    return TrainingJob.objects.filter(experiment__project=project, status__in=ACTIVE).exists()


def experiment_for_user(user, experiment_id) -> Experiment:
    return get_object_or_404(
        Experiment.objects.select_related("project", "dataset", "base_experiment", "created_by"),
        pk=experiment_id,
        project__owner=user,
    )


def experiment_jobs(experiment):
    """The experiment's jobs, newest first, each with its model (if any) in the same query."""
    return experiment.jobs.with_run_numbers().select_related("model").order_by("-created_at", "-pk")


def latest_job(experiment) -> TrainingJob | None:
    return experiment.jobs.with_run_numbers().select_related("model").order_by("-created_at", "-pk").first()


def job_resumable(job: TrainingJob | None) -> bool:
    """Whether `job` can be resumed: failed or cancelled, with a checkpoint (only the latest run keeps one)."""
    ended = (TrainingJob.Status.FAILED, TrainingJob.Status.CANCELLED)
    return bool(job and job.status in ended and checkpoint_epoch(job.pk) is not None)


def job_for_user(user, job_id) -> TrainingJob:
    return get_object_or_404(
        TrainingJob.objects.select_related("experiment__project"), pk=job_id, experiment__project__owner=user
    )


def job_history(job) -> list[dict]:
    """Per-epoch metrics so far, for the curves (grows while the job trains)."""
    return list(
        EpochMetric.objects.filter(job=job)
        .order_by("epoch")
        .values("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
    )


def models_for_project(project):
    return (
        TrainedModel.objects.filter(project=project)
        .select_related("experiment", "job", "experiment__dataset")
        .order_by("-version")
    )


def model_for_user(user, model_id) -> TrainedModel:
    return get_object_or_404(TrainedModel.objects.select_related("project"), pk=model_id, project__owner=user)


def model_in_project_for_user(user, project_id, model_id) -> TrainedModel:
    """`user`'s model `model_id`, found under the page's project only (404 otherwise)."""
    model = model_for_user(user, model_id)
    if model.project_id != project_id:
        raise Http404("No such model in this project.")
    return model


def bottleneck_bases_for_project(project):
    """Experiments a finetune can start from: bottleneck runs with a succeeded model."""
    return (
        Experiment.objects.filter(
            project=project, mode=Experiment.Mode.BOTTLENECK, models__job__status=TrainingJob.Status.SUCCEEDED
        )
        .select_related("dataset")
        .distinct()
        .order_by("-created_at")
    )


def versus_base(job) -> dict | None:
    """A fine-tune's accuracy against its base model's, both measured on the same validation
    images (the base before the fine-tune's first epoch); None for other jobs.

    ``points`` is the difference in percentage points; ``summary`` says it in words, plainly
    when fine-tuning did not improve on the base.
    """
    result = (job.result or {}) if job else {}
    base, evaluation = result.get("base_evaluation"), result.get("evaluation")
    if not base or not evaluation:
        return None
    points = round(100 * (evaluation["accuracy"] - base["accuracy"]), 1)
    before, after = format_percent(base["accuracy"]), format_percent(evaluation["accuracy"])
    summary = f"{format_points(points)} against its base ({before} \u2192 {after})"
    if points <= 0:
        summary += ": fine-tuning did not improve on the base model; the base model is at least as good"
    return {
        "base_model": base.get("model_id"),
        "base_accuracy": base["accuracy"],
        "accuracy": evaluation["accuracy"],
        "points": points,
        "improved": points > 0,
        "summary": summary,
    }


def _reliability_rows(calibration: dict) -> list[dict]:
    """The reliability diagram as table rows: bins with images, confidence vs accuracy, before and after."""
    after = {(b["lo"], b["hi"]): b for b in calibration.get("reliability_after") or []}
    rows = []
    for before in calibration.get("reliability_before") or []:
        other = after.get((before["lo"], before["hi"])) or {}
        if before.get("count") or other.get("count"):
            rows.append({"lo": before["lo"], "hi": before["hi"], "before": before, "after": other})
    return rows


def _reliability_chart(calibration: dict) -> dict | None:
    """The reliability diagram's points (static/js/reliability.js): per bin with images, mean
    confidence against accuracy, before and after temperature scaling; None without bins."""

    def points(bins):
        return [
            {"x": b["confidence"], "y": b["accuracy"], "n": b["count"]}
            for b in bins or []
            if b.get("count") and b.get("confidence") is not None and b.get("accuracy") is not None
        ]

    before, after = points(calibration.get("reliability_before")), points(calibration.get("reliability_after"))
    return {"before": before, "after": after} if before or after else None


_PRECISION_SOURCES = {
    "asked": "as the experiment asked",
    "measured": "auto: measured on this worker",
    "measured earlier": "auto: this worker's earlier measurement",
    "cached features": "auto: features stored earlier in this precision",
}


def job_precision(job) -> dict | None:
    """The arithmetic the frozen base computed the training features in, and why (workers/ml/precision.py);
    None for runs without a frozen-base extraction (or recorded before it was a choice)."""
    chosen = ((job.result or {}).get("timings") or {}).get("precision") if job else None
    if not chosen:
        return None
    speeds = chosen.get("images_per_s") or {}
    error = chosen.get("relative_error")
    parts = [_PRECISION_SOURCES.get(chosen.get("source"), chosen.get("source", ""))]
    if speeds.get("float32") and speeds.get("bfloat16"):
        parts.append(f"bfloat16 {speeds['bfloat16']:.1f} vs float32 {speeds['float32']:.1f} images/s")
    if error is not None:
        parts.append(f"bfloat16 features within {error:.2%} of float32's")
    return {**chosen, "summary": "; ".join(p for p in parts if p)}


def job_evaluation(job) -> dict | None:
    """The succeeded job's evaluation, shaped for the page: heatmap rows with a shade per cell."""
    evaluation = (job.result or {}).get("evaluation") if job else None
    if not evaluation:
        return None
    labels, matrix = evaluation.get("labels", []), evaluation.get("confusion_matrix", [])
    rows = []
    for label, counts in zip(labels, matrix, strict=False):
        total = sum(counts) or 1
        # Shade by the share of the true class's images, so classes of different sizes compare. At most 0.55
        # of the accent, so the dark text stays at 6:1 or more on every shade (WCAG AA; white text on the
        # middle shades failed it).
        cells = [
            {"count": c, "share": c / total, "alpha": round(0.08 + 0.47 * c / total, 3) if c else 0, "predicted": p}
            for c, p in zip(counts, labels, strict=False)
        ]
        rows.append({"label": label, "cells": cells, "correct": counts[labels.index(label)] if counts else 0})
    recall_ci = {r["class"]: r["ci95"] for r in evaluation.get("per_class_recall") or []}
    per_class = [
        {"label": name, **values, "recall_ci95": recall_ci.get(name)}
        for name, values in (evaluation.get("per_class") or {}).items()
    ]
    per_class.sort(key=lambda c: (c["recall"], c["label"]))  # worst first: where to look
    split = evaluation.get("split", "validation")
    calibration = evaluation.get("calibration") or {}
    return {
        "split": split,
        # Without a test split, the epoch was chosen on these very images: say so next to the number.
        "split_label": "test (held out: nothing was chosen on it)"
        if split == "test"
        else "validation (used to choose the epoch: optimistic)",
        "n": evaluation.get("n") or sum(sum(r) for r in matrix),
        "accuracy_ci95": evaluation.get("accuracy_ci95"),
        "macro_f1": evaluation.get("macro_f1"),
        "macro_f1_ci95": evaluation.get("macro_f1_ci95"),
        "balanced_accuracy": evaluation.get("balanced_accuracy"),
        "calibration": calibration,
        "reliability": _reliability_rows(calibration),
        "reliability_chart": _reliability_chart(calibration),
        "accuracy": evaluation.get("accuracy"),
        "labels": labels,
        "rows": rows,
        "per_class": per_class,
        "mistakes": evaluation.get("confident_mistakes") or [],
        # Runs whose record names each scored image's file and probabilities have galleries (galleries.py).
        "galleries": "paths" in ((job.result or {}).get("scored") or {}),
        "best_epoch": job.result.get("best_epoch"),
        "versus_base": versus_base(job),
    }
