"""Reads for the API: another user's objects are not found (404), never forbidden."""

from webapp.core.errors import Conflict
from webapp.experiments.models import TrainedModel
from webapp.projects.models import Project


def published_model_for_project(project: Project) -> TrainedModel:
    """The model the project's endpoint serves now: one indexed query per request, so a newly
    published model takes over without a restart. Conflict (409) when there is none."""
    model = TrainedModel.objects.filter(project=project, published=True).first()
    if model is None:
        raise Conflict(
            f"Project {project.pk} ({project.name}) has no published model: publish one with "
            "POST /api/v1/models/{id}/publish/, or call /api/v1/models/{id}/predict/."
        )
    return model
