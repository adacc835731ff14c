"""JSON bodies nested too deeply are the client's error (400), on every JSON endpoint; predict bodies
are capped by TL_PREDICT_MAX_BODY_BYTES, the documented limit, not by Django's 10 MiB default."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from tests.predictions.conftest import make_dataset, make_model

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
