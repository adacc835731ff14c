"""What a project stands at, for its page and the projects list: the published model, the best
experiment, what is running, and the one next step a user should take."""

from dataclasses import dataclass

from django.urls import reverse

from .models import TrainedModel, TrainingJob

ACTIVE = (TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING)


@dataclass(frozen=True)
class NextStep:
    text: str
    action: str
    url: str


def _headline(job: TrainingJob) -> dict | None:
    evaluation = (job.result or {}).get("evaluation") or {}
    if evaluation.get("accuracy") is None:
        return None
    return {
        "accuracy": evaluation["accuracy"],
        "split": evaluation.get("split", "validation"),
        "n": evaluation.get("n"),
    }


def project_overview(project) -> dict:
    published = TrainedModel.objects.filter(project=project, published=True).select_related("experiment", "job").first()
    succeeded = TrainingJob.objects.filter(experiment__project=project, status=TrainingJob.Status.SUCCEEDED)
    best = None
    for job in succeeded.select_related("experiment").order_by("-finished_at", "-pk"):
        headline = _headline(job)
        if headline and (best is None or headline["accuracy"] > best["accuracy"]):
            best = {**headline, "experiment": job.experiment}
    active = list(
        TrainingJob.objects.filter(experiment__project=project, status__in=ACTIVE)
        .select_related("experiment")
        .order_by("created_at", "pk")
    )
    return {
        "published": published,
        "published_headline": _headline(published.job) if published else None,
        "best": best,
        "active": active,
        "next_step": _next_step(project, published=published, has_succeeded=succeeded.exists(), active=active),
    }


def _next_step(project, *, published, has_succeeded: bool, active: list) -> NextStep:
    datasets = project.datasets.all()
    pid = project.pk
    if published is not None:
        return NextStep(
            f"Model v{published.version} answers on this project's prediction endpoint.",
            "Try it",
            reverse("experiments:models", args=[pid]) + "#try-it",
        )
    if has_succeeded:
        return NextStep(
            "A model is trained: publish the one you trust to serve predictions.",
            "Choose a model to publish",
            reverse("experiments:models", args=[pid]),
        )
    if active:
        job = active[0]
        return NextStep(
            f"{job.experiment.name} is {job.status}; its page follows it live.",
            "Follow it",
            reverse("experiments:detail", args=[pid, job.experiment_id]),
        )
    if project.experiments.exists():
        return NextStep(
            "No experiment has succeeded yet: their pages say why.",
            "See the experiments",
            reverse("experiments:list", args=[pid]),
        )
    if datasets.filter(status="ready").exists():
        return NextStep(
            "Your images are ready: start with the bottleneck preset, the quickest to train.",
            "Start an experiment",
            reverse("experiments:create", args=[pid]),
        )
    if datasets.filter(status="processing").exists():
        dataset = datasets.filter(status="processing").first()
        return NextStep(
            "Your upload is being checked; the report opens when it is done.",
            "See the upload",
            reverse("projects:dataset_detail", args=[dataset.pk]),
        )
    return NextStep(
        "Upload your images: one folder per class, optionally split into train/ and validation/.",
        "Upload your images",
        reverse("projects:dataset_upload", args=[pid]),
    )
