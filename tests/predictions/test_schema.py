import re

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.predictions.conftest import make_model
from webapp.accounts.services import api_token_create
from webapp.wsgi import application


@pytest.fixture
def keep_db_connection():
    """Django closes the database connection when a WSGI request ends (as Django's test client does not),
    which would close the test's transaction: keep it open while schemathesis calls the app."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(db, keep_db_connection, alice, tiny_model):
    from webapp.projects.models import Project

    project = Project.objects.create(owner=alice, name="Fuzzed")
    make_model(project, tiny_model, published=True)
    return schemathesis.openapi.from_wsgi("/api/v1/schema/", application)


# Rotating would revoke the token the other calls use; health asks the workers (1 s a call) and has
# its own tests.
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=r"/(auth/token/rotate|health)/$")


@pytest.fixture
def token(alice):
    return api_token_create(user=alice)[1]


# No 5xx, and nothing the schema does not describe: status codes, content types, bodies, headers;
# schema-invalid input must be refused. (Not positive_data_acceptance: a schema-valid body can still
# be refused for what it means, e.g. a wrong password or bytes that are not an image.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_it_keeps_every_answer_within_the_schema(case, token):
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)


def test_it_serves_the_schema_with_every_endpoint(client):
    document = client.get("/api/v1/schema/?format=json").json()
    paths = document["paths"]
    assert set(paths) == {
        "/api/v1/health/",
        "/api/v1/auth/token/",
        "/api/v1/auth/token/rotate/",
        "/api/v1/projects/",
        "/api/v1/projects/{project_id}/",
        "/api/v1/projects/{project_id}/datasets/",
        "/api/v1/datasets/{dataset_id}/",
        "/api/v1/datasets/{dataset_id}/retry/",
        "/api/v1/datasets/{dataset_id}/without-leaks/",
        "/api/v1/datasets/{dataset_id}/label-errors/",
        "/api/v1/datasets/{dataset_id}/edits/",
        "/api/v1/datasets/{dataset_id}/versions/",
        "/api/v1/projects/{project_id}/experiments/",
        "/api/v1/experiments/{experiment_id}/",
        "/api/v1/experiments/{experiment_id}/cancel/",
        "/api/v1/experiments/{experiment_id}/retry/",
        "/api/v1/experiments/{experiment_id}/resume/",
        "/api/v1/experiments/{experiment_id}/retrain/",
        "/api/v1/projects/{project_id}/models/",
        "/api/v1/models/{model_id}/",
        "/api/v1/models/{model_id}/publish/",
        "/api/v1/projects/{project_id}/predict/",
        "/api/v1/models/{model_id}/predict/",
        "/api/v1/models/{model_id}/exports/",
        "/api/v1/exports/{export_id}/",
        "/api/v1/exports/{export_id}/download/",
    }
    predict = paths["/api/v1/projects/{project_id}/predict/"]["post"]
    assert set(predict["requestBody"]["content"]) == {"multipart/form-data", "application/json"}
    assert {"200", "400", "401", "404", "409", "413", "429"} <= set(predict["responses"])
    exports = paths["/api/v1/models/{model_id}/exports/"]["post"]
    assert {"200", "202", "400", "404", "503"} <= set(exports["responses"])
    assert list(paths["/api/v1/exports/{export_id}/download/"]["get"]["responses"]["200"]["content"]) == [
        "application/zip"
    ]
    upload = paths["/api/v1/projects/{project_id}/datasets/"]["post"]
    # An archive (multipart) or a Keras sample (JSON: {"sample", "per_class"}).
    assert list(upload["requestBody"]["content"]) == ["multipart/form-data", "application/json"]
    sample = upload["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(document["components"]["schemas"][sample]["properties"]) == {"sample", "per_class"}
    # Managing things (issue 18): rename, delete refused with a 409 while something depends on the object.
    for path in (
        "/api/v1/experiments/{experiment_id}/",
        "/api/v1/models/{model_id}/",
        "/api/v1/datasets/{dataset_id}/",
    ):
        assert {"204", "404", "409"} <= set(paths[path]["delete"]["responses"]), path
    assert {"200", "400", "404"} <= set(paths["/api/v1/experiments/{experiment_id}/"]["patch"]["responses"])
    assert "200" in paths["/api/v1/projects/{project_id}/datasets/"]["get"]["responses"]


@pytest.mark.django_db
def test_it_serves_the_docs_from_local_static_files(client, settings):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert asset.startswith(settings.STATIC_URL), f"{asset} is not served by this server"
        assert finders.find(asset.removeprefix(settings.STATIC_URL).split("?")[0]), f"{asset} is not a static file"
