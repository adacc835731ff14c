"""JSON bodies nested too deeply are the client's error (400), on every JSON endpoint; predict bodies
are capped by TL_PREDICT_MAX_BODY_BYTES, the documented limit, not by Django's 10 MiB default."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image
from rest_framework.test import APIClient

from tests.predictions.conftest import api_client, make_dataset, make_model
from webapp import api_urls
from webapp.exports.models import ModelExport

pytestmark = pytest.mark.django_db

DEEP = b"[" * 50_000
TOO_DEEP = "the JSON body is nested too deeply (more than 64 levels of arrays and objects)"


def _json_endpoints(project, model, dataset):
    return [
        ("post", "/api/v1/auth/token/"),
        ("post", "/api/v1/projects/"),
        ("patch", f"/api/v1/projects/{project.pk}/"),
        ("post", f"/api/v1/projects/{project.pk}/experiments/"),
        ("post", f"/api/v1/projects/{project.pk}/predict/"),
        ("post", f"/api/v1/models/{model.pk}/predict/"),
    ]


def test_it_answers_50000_open_brackets_with_400_on_every_json_endpoint(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model, published=True)
    for method, url in _json_endpoints(alice_project, model, make_dataset(alice_project)):
        response = getattr(alice_api, method)(url, DEEP, content_type="application/json")
        assert response.status_code == 400, (url, response.content[:200])
        assert response.json() == {"detail": TOO_DEEP, "errors": []}, url


def test_it_answers_the_unauthenticated_token_endpoint_with_400(client):
    response = client.post("/api/v1/auth/token/", DEEP, content_type="application/json")
    assert response.status_code == 400 and response.json()["detail"] == TOO_DEEP


def test_it_refuses_a_body_parsed_fine_but_nested_past_the_limit(alice_api):
    nested = {"name": "x", "description": json.loads("[" * 65 + "]" * 65)}
    response = alice_api.post("/api/v1/projects/", json.dumps(nested), content_type="application/json")
    assert response.status_code == 400 and response.json()["detail"] == TOO_DEEP
    shallow = alice_api.post("/api/v1/projects/", {"name": "Shallow"}, format="json")
    assert shallow.status_code == 201


# API actions that read no body: any body, the reproduction included, is ignored, never parsed.
BODILESS = {
    "auth/token/rotate/",
    "datasets/<int:dataset_id>/retry/",
    "datasets/<int:dataset_id>/without-leaks/",
    "datasets/<int:dataset_id>/label-errors/",
    "datasets/<int:dataset_id>/versions/",
    "experiments/<int:experiment_id>/cancel/",
    "experiments/<int:experiment_id>/retry/",
    "experiments/<int:experiment_id>/resume/",
    "models/<int:model_id>/publish/",
}


def test_no_api_route_answers_the_reproduction_with_a_server_error(alice, alice_project, tiny_model):
    """Every POST, PUT and PATCH the API routes, signed in and not: JSON under 500, and 400 naming the
    depth wherever a body is read, so that an endpoint added later is covered without being listed."""
    model = make_model(alice_project, tiny_model, published=True)
    experiment = model.experiment
    experiment.config = {**experiment.config, "backbone": "vgg16"}  # as parse_config leaves every real one
    experiment.save(update_fields=["config"])
    export = ModelExport.objects.create(model=model, format=ModelExport.Format.KERAS)
    ids = {
        "project_id": alice_project.pk,
        "dataset_id": experiment.dataset_id,
        "experiment_id": experiment.pk,
        "model_id": model.pk,
        "export_id": export.pk,
    }
    routes = [
        (str(p.pattern), p.callback.view_class) for p in api_urls.urlpatterns if hasattr(p.callback, "view_class")
    ]
    assert BODILESS <= {route for route, _ in routes}
    parsed = []
    for route, view in routes:
        url = "/api/v1/" + route
        for name, value in ids.items():
            url = url.replace(f"<int:{name}>", str(value))
        assert "<" not in url, url
        for method in ("post", "put", "patch"):
            if not hasattr(view, method):
                continue
            # A fresh token each time: rotating revokes the one it was called with.
            for client in (api_client(alice), APIClient()):
                response = getattr(client, method)(url, DEEP, content_type="application/json")
                where = (method, url, response.status_code, response.content[:200])
                assert response.status_code < 500 and response["Content-Type"] == "application/json", where
                if response.status_code == 400:
                    assert response.json() == {"detail": TOO_DEEP, "errors": []}, where
                    parsed.append((method, route))
            if route not in BODILESS:
                assert (method, route) in parsed, f"{method.upper()} {url} read no body: add it to BODILESS"
    assert len(parsed) > 10


def _noise_png(seed: int, side: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def twenty_mib_body():
    """Two valid 8 MB PNGs as base64 instances: a ~20 MiB JSON body, twice Django's 10 MiB default."""
    images = [_noise_png(seed, 1640) for seed in (1, 2)]
    body = json.dumps({"instances": [{"b64": base64.b64encode(data).decode()} for data in images]}).encode()
    assert 20 * 1024**2 < len(body) < 21 * 1024**2
    return body


def test_it_accepts_a_20_mib_json_predict_body_under_the_documented_limit(
    alice_api, alice_project, tiny_model, twenty_mib_body, settings
):
    assert settings.TL_PREDICT_MAX_BODY_BYTES == 64 * 1024**2 and settings.DATA_UPLOAD_MAX_MEMORY_SIZE < len(
        twenty_mib_body
    )
    make_model(alice_project, tiny_model, published=True)
    url = f"/api/v1/projects/{alice_project.pk}/predict/"
    response = alice_api.post(url, twenty_mib_body, content_type="application/json")
    assert response.status_code == 200, response.content[:300]
    assert len(response.json()["predictions"]) == 2


def test_it_refuses_a_json_predict_body_over_its_limit_with_its_own_message(
    alice_api, alice_project, tiny_model, twenty_mib_body, settings
):
    settings.TL_PREDICT_MAX_BODY_BYTES = 16 * 1024**2
    make_model(alice_project, tiny_model, published=True)
    url = f"/api/v1/projects/{alice_project.pk}/predict/"
    response = alice_api.post(url, twenty_mib_body, content_type="application/json")
    assert response.status_code == 413
    assert response.json() == {
        "detail": f"The request body is {len(twenty_mib_body)} bytes; "
        "the limit is 16777216 bytes (TL_PREDICT_MAX_BODY_BYTES).",
        "errors": [],
    }
