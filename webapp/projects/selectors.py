"""Reads shaped for pages and the API. Another user's objects are simply not found (404)."""

from django.db.models import Count
from django.shortcuts import get_object_or_404

from .models import Dataset, Project


def projects_for_user(user):
    return Project.objects.filter(owner=user).annotate(
        dataset_count=Count("datasets", distinct=True), experiment_count=Count("experiments", distinct=True)
    )


def project_for_user(user, project_id) -> Project:
    return get_object_or_404(Project, pk=project_id, owner=user)


def dataset_for_user(user, dataset_id) -> Dataset:
    return get_object_or_404(Dataset.objects.select_related("project"), pk=dataset_id, project__owner=user)


def dataset_detail_for_user(user, dataset_id) -> Dataset:
    """A dataset with its project and classes, for the report page and the API."""
    return get_object_or_404(
        Dataset.objects.select_related("project", "created_by").prefetch_related("classes"),
        pk=dataset_id,
        project__owner=user,
    )


def upload_session_for_user(user, project_id, session_id):
    from .models import UploadSession

    return get_object_or_404(
        UploadSession.objects.select_related("project"), pk=session_id, project_id=project_id, project__owner=user
    )
