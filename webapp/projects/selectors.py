"""Reads shaped for pages and the API. Another user's objects are simply not found (404)."""

from django.apps import apps
from django.db.models import Count, IntegerField, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404

from .models import Dataset, Project


def projects_for_user(user):
    return Project.objects.filter(owner=user).annotate(
        dataset_count=Count("datasets", distinct=True), experiment_count=Count("experiments", distinct=True)
    )


def project_for_user(user, project_id) -> Project:
    return get_object_or_404(Project, pk=project_id, owner=user)


def datasets_for_project(project):
    """The project's dataset versions, newest first, with their class and image counts and how many
    experiments use each (what deleting one depends on), in one query."""
    return (
        project.datasets.annotate(
            class_count=Count("classes", distinct=True),
            train_count=Sum("classes__train_count"),
            validation_count=Sum("classes__validation_count"),
            test_count=Sum("classes__test_count"),
            # A subquery, not a second join: joined with classes it would multiply the sums.
            experiment_count=Coalesce(
                Subquery(
                    apps.get_model("experiments", "Experiment")  # by name: experiments sits above projects
                    .objects.filter(dataset=OuterRef("pk"))
                    .values("dataset")
                    .annotate(n=Count("pk"))
                    .values("n"),
                    output_field=IntegerField(),
                ),
                0,
            ),
        )
        .select_related("project")
        .order_by("-version")
    )


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
