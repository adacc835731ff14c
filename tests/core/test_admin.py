"""Every admin list page costs the same number of queries for one row as for many (no N+1)."""

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.experiments.factories import make_dataset, make_project
from webapp.experiments.models import Experiment, TrainedModel, TrainingJob
from webapp.predictions.models import PredictionLog
from webapp.projects.models import DatasetClass, UploadSession

APP_LABELS = {"projects", "experiments", "predictions"}


def _graph(owner, n: int) -> None:
    """One project with everything in it, each row owned through a chain of foreign keys."""
    project = make_project(owner, name=f"Project {n}")
    dataset = make_dataset(project, n_train=2, n_val=1)
    DatasetClass.objects.get_or_create(dataset=dataset, name="extra")
    UploadSession.objects.create(project=project, created_by=owner)
    experiment = Experiment.objects.create(
        project=project, dataset=dataset, name=f"e{n}", mode="bottleneck", backbone="vgg16", config={}, created_by=owner
    )
    job = TrainingJob.objects.create(experiment=experiment, status=TrainingJob.Status.SUCCEEDED)
    model = TrainedModel.objects.create(
        project=project, experiment=experiment, job=job, version=1, path="/nowhere", size_bytes=1,
        checksum="0" * 64, class_names=["a", "b"], image_size=[32, 32], backbone="vgg16",
    )  # fmt: skip
    PredictionLog.objects.create(project=project, model=model, image_count=1, latency_ms=5.0, status_code=200)


def _changelist_queries(client, model) -> int:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


@pytest.mark.django_db
def test_no_admin_list_page_makes_a_query_per_row(client, alice, django_user_model):
    superuser = django_user_model.objects.create_superuser("root", "root@example.com", "root-password-1")
    client.force_login(superuser)
    models = [m for m in admin.site._registry if m._meta.app_label in APP_LABELS]
    assert len(models) >= 8
    _graph(alice, 1)
    one = {m: _changelist_queries(client, m) for m in models}
    _graph(alice, 2)
    _graph(alice, 3)
    many = {m: _changelist_queries(client, m) for m in models}
    grew = {m._meta.label: (one[m], many[m]) for m in models if many[m] != one[m]}
    assert not grew, f"queries grow with rows (1 row -> 3 rows): {grew}"
