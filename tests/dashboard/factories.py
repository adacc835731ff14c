"""Projects, experiments and jobs in hand-set states for dashboard tests (datasets with files come
from tests.experiments.factories)."""

from datetime import timedelta

from django.utils import timezone

from webapp.experiments.models import Experiment, TrainingJob
from webapp.projects.models import Dataset, Project


def make_project(owner, name="Shapes") -> Project:
    return Project.objects.get_or_create(owner=owner, name=name)[0]


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
