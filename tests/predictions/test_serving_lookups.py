"""The predict path's reads are raw SQL for speed (issue 20, point 7): each must answer what its ORM form
answers, field for field, with the same errors and in one query; and moving the API's routes first in the
URL configuration must change no answer."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import URLResolver, get_resolver
from django.urls.exceptions import Resolver404

from tests.predictions.conftest import make_dataset
from webapp.accounts.models import ApiToken
from webapp.accounts.selectors import api_token_for_key
from webapp.accounts.services import api_token_create
from webapp.core.errors import Conflict
from webapp.experiments.models import Experiment, TrainedModel, TrainingJob
from webapp.predictions.selectors import project_for_predict, published_model_for_project
from webapp.projects.models import Project


def _fields(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.concrete_fields}


def _model(project, version, **fields) -> TrainedModel:
    dataset = project.datasets.first() or make_dataset(project)
    experiment = Experiment.objects.create(
        project=project, dataset=dataset, name=f"v{version}", mode="scratch", config={}
    )
    job = TrainingJob.objects.create(experiment=experiment, status=TrainingJob.Status.SUCCEEDED, progress=1.0)
    defaults = {"path": f"models/x{version}", "size_bytes": 123, "checksum": "ab" * 32, "class_names": ["a", "b"],
                "image_size": [32, 32], "backbone": "scratch"}  # fmt: skip
    return TrainedModel.objects.create(
        project=project, experiment=experiment, job=job, version=version, **{**defaults, **fields}
    )


@pytest.mark.django_db
def test_the_project_is_the_orms_row_field_for_field_and_another_users_is_not_found(alice, bob):
    project = Project.objects.create(owner=alice, name="Shapes é", description="line\none", store_predictions=True)
    Project.objects.create(owner=bob, name="Bob's")
    found = project_for_predict(alice, project.pk)
    assert type(found) is Project
    assert _fields(found) == _fields(get_object_or_404(Project, pk=project.pk, owner=alice))
    assert found.store_predictions is True and found.created_at.tzinfo is not None
    for user, pk in ((bob, project.pk), (alice, project.pk + 1000), (alice, 2**63), (alice, 10**30)):
        with pytest.raises(Http404) as raised:
            project_for_predict(user, pk)
        with pytest.raises(Http404) as orm:
            get_object_or_404(Project, pk=pk, owner=user)
        assert str(raised.value) == str(orm.value)


@pytest.mark.django_db
def test_the_published_model_is_the_orms_row_field_for_field(alice, django_assert_num_queries):
    project = Project.objects.create(owner=alice, name="Shapes")
    _model(project, 1)
    published = _model(
        project, 2, published=True, published_at=datetime(2026, 11, 30, 1, 2, 3, tzinfo=UTC), threshold=0.8,
        class_names=["chat", "chien", "oiseau é"], metrics={"accuracy": 0.9, "nested": {"list": [1, 2.5, None]}},
    )  # fmt: skip
    _model(project, 3)
    other = Project.objects.create(owner=alice, name="Other")
    _model(other, 1, published=True)
    with django_assert_num_queries(1):
        found = published_model_for_project(project)
        assert found.project is project  # the row already read, no second query
    assert found.pk == published.pk
    assert _fields(found) == _fields(TrainedModel.objects.get(project=project, published=True))
    assert found.threshold == 0.8 and found.published is True and found.image_size == [32, 32]


@pytest.mark.django_db
def test_a_project_without_a_published_model_is_a_conflict(alice):
    project = Project.objects.create(owner=alice, name="Shapes")
    _model(project, 1)
    with pytest.raises(Conflict, match="has no published model"):
        published_model_for_project(project)


@pytest.mark.django_db
def test_the_token_and_its_user_come_back_in_one_query_as_the_orm_reads_them(alice, bob, django_assert_num_queries):
    token, key = api_token_create(user=alice)
    api_token_create(user=bob)
    with django_assert_num_queries(1):
        found = api_token_for_key(key)
        assert found.user.is_active and found.user_id == alice.pk
    orm = ApiToken.objects.select_related("user").get(digest=token.digest)
    assert found.pk == orm.pk and found.user == orm.user
    assert _fields(found.user) == _fields(orm.user)
    assert not hasattr(found.user, "_api_token_id")
    assert _fields(found) == _fields(orm)  # the fields it left unread load on demand
    assert api_token_for_key(key + "x") is None
    get_user_model().objects.filter(pk=alice.pk).update(is_active=False)
    assert api_token_for_key(key).user.is_active is False  # the authentication refuses it, as before
    token.delete()
    assert api_token_for_key(key) is None


def test_no_page_route_answers_a_path_under_the_api():
    pages = [p for p in get_resolver().url_patterns if not (isinstance(p, URLResolver) and str(p.pattern) == "api/v1/")]
    assert len(pages) == len(get_resolver().url_patterns) - 1
    resolver = URLResolver(get_resolver().pattern, pages)
    for path in ("/api/v1/projects/1/predict/", "/api/v1/models/1/predict/", "/api/v1/projects/1/", "/api/v1/x"):
        with pytest.raises(Resolver404):
            resolver.resolve(path)
