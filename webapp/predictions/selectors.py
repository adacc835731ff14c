"""Reads for the API: another user's objects are not found (404), never forbidden.

The two reads of every project predict request are raw SQL on purpose: with the ORM, building and
compiling each query cost two to three times the query itself, and the two together were the largest
part of predict's overhead over the model call (issue 20, point 7). They answer what the ORM forms
would (`get_object_or_404(Project, pk=..., owner=user)` and `TrainedModel.objects.get(project=...,
published=True)`), with the same model instances and the same errors; tests hold them to that.
"""

from functools import cache

from django.db import connection
from django.http import Http404

from webapp.core.errors import Conflict
from webapp.experiments.models import TrainedModel
from webapp.projects.models import Project


@cache
def _sql(model, *fields: str) -> str:
    """SELECT every column of `model`'s table WHERE each of `fields` equals a parameter, in that order
    (table and column names from the model, quoted; values only ever passed as parameters)."""
    quote = connection.ops.quote_name
    where = " AND ".join(f"{quote(model._meta.get_field(name).column)} = %s" for name in fields)
    return f"SELECT * FROM {quote(model._meta.db_table)} WHERE {where}"


def project_for_predict(user, project_id: int) -> Project:
    """`user`'s project `project_id`, or Http404 as `projects.selectors.project_for_user` answers.

    An id past the column's range matches nothing, as in the ORM (the URL takes any number of digits,
    and the database driver would refuse the parameter)."""
    low, high = connection.ops.integer_field_range(Project._meta.pk.get_internal_type())
    if (low is None or project_id >= low) and (high is None or project_id <= high):
        for project in Project.objects.raw(_sql(Project, "id", "owner"), [project_id, user.pk]):
            return project
    raise Http404(f"No {Project._meta.object_name} matches the given query.")


def published_model_for_project(project: Project) -> TrainedModel:
    """The model the project's endpoint serves now: one indexed query per request, so a newly
    published model takes over without a restart. Conflict (409) when there is none.

    One row at most: a constraint allows one published model per project."""
    for model in TrainedModel.objects.raw(_sql(TrainedModel, "project", "published"), [project.pk, True]):
        model.project = project  # the same row, already read
        return model
    raise Conflict(
        f"Project {project.pk} ({project.name}) has no published model: publish one with "
        "POST /api/v1/models/{id}/publish/, or call /api/v1/models/{id}/predict/."
    )
