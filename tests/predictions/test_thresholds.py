"""PATCH /api/v1/models/{id}/ sets a model's confidence threshold; predict says which answers reach it."""

import base64
import math

import pytest

from tests.predictions.conftest import make_model, shape_png

pytestmark = pytest.mark.django_db

# Validation images, most confident first: [confidence, correct].
CURVE = [[0.99, 1.0], [0.95, 1.0], [0.9, 0.0], [0.8, 1.0], [0.8, 1.0], [0.6, 0.0], [0.5, 1.0], [0.4, 0.0]]


def _patch(client, model, body):
    return client.patch(f"/api/v1/models/{model.pk}/", body, format="json")


def _predict(client, url, image: bytes) -> dict:
    response = client.post(url, {"instances": [{"b64": base64.b64encode(image).decode()}]}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_it_sets_a_threshold_and_answers_what_it_does_on_validation(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model, curve=CURVE)
    response = _patch(alice_api, model, {"threshold": 0.9})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == model.pk and body["threshold"] == 0.9
    assert body["threshold_effect"] == {
        "threshold": 0.9, "accepted": 3, "coverage": 3 / 8, "precision": 2 / 3, "recall": 2 / 8,
    }  # fmt: skip
    model.refresh_from_db()
    assert model.threshold == 0.9
    listed = alice_api.get(f"/api/v1/projects/{alice_project.pk}/models/").json()["results"]
    assert listed[0]["threshold"] == 0.9


def test_it_clears_a_threshold_with_null(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model, curve=CURVE, threshold=0.9)
    response = _patch(alice_api, model, {"threshold": None})
    assert response.status_code == 200
    assert response.json()["threshold"] is None and response.json()["threshold_effect"] is None
    model.refresh_from_db()
    assert model.threshold is None


def test_it_picks_the_lowest_threshold_reaching_a_target_precision(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model, curve=CURVE)
    body = _patch(alice_api, model, {"target_precision": 0.8}).json()
    # At 0.8 four of five accepted images are right; lower thresholds fall below 80%.
    assert body["threshold"] == 0.8
    assert body["threshold_effect"]["precision"] == 0.8 and body["threshold_effect"]["accepted"] == 5
    assert _patch(alice_api, model, {"target_precision": 1}).json()["threshold"] == 0.95
    assert _patch(alice_api, model, {"target_precision": 0.7}).json()["threshold"] == 0.5


def test_it_says_when_no_threshold_reaches_the_target(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model, curve=[[0.9, 0.0], [0.7, 1.0], [0.5, 1.0]], threshold=0.6)
    response = _patch(alice_api, model, {"target_precision": 0.9})
    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"No threshold reaches 90.0% precision on model v{model.version}'s 3 validation images; "
        "the most is 66.7%, at threshold 50.0%."
    )
    assert response.json()["errors"][0]["field"] == "target_precision"
    model.refresh_from_db()
    assert model.threshold == 0.6  # unchanged


def test_a_model_without_a_validation_curve_takes_a_threshold_but_not_a_target(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model, curve=[])
    response = _patch(alice_api, model, {"target_precision": 0.9})
    assert response.status_code == 409
    assert "has no validation curve" in response.json()["detail"]
    response = _patch(alice_api, model, {"threshold": 0.7})
    assert response.status_code == 200
    assert response.json()["threshold"] == 0.7 and response.json()["threshold_effect"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"threshold": 1.5}, "threshold"),
        ({"threshold": -0.1}, "threshold"),
        ({"threshold": "0.9"}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"target_precision": 0}, "target_precision"),
        ({"target_precision": None}, "target_precision"),
        ({"threshold": 0.5, "target_precision": 0.9}, None),
        ({}, None),
        ({"treshold": 0.9}, "treshold"),
    ],
)
def test_it_refuses_bodies_that_do_not_say_one_threshold(alice_api, alice_project, tiny_model, body, field):
    model = make_model(alice_project, tiny_model, curve=CURVE, threshold=0.6)
    response = _patch(alice_api, model, body)
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["field"] == field
    model.refresh_from_db()
    assert model.threshold == 0.6


def test_another_users_model_is_not_found(alice_api, bob_project, tiny_model):
    model = make_model(bob_project, tiny_model, curve=CURVE)
    assert _patch(alice_api, model, {"threshold": 0.9}).status_code == 404
    assert _patch(alice_api, model, {"target_precision": 0.8}).status_code == 404
    model.refresh_from_db()
    assert model.threshold is None


def test_predict_accepts_an_answer_from_the_threshold_on(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model, published=True)
    image = shape_png("circle", seed=9000)
    url = f"/api/v1/models/{model.pk}/predict/"
    before = _predict(alice_api, url, image)
    confidence = before["predictions"][0]["confidence"]
    assert before["model"]["threshold"] is None and before["predictions"][0]["accepted"] is True
    assert confidence < 1

    assert _patch(alice_api, model, {"threshold": confidence}).status_code == 200
    at = _predict(alice_api, url, image)
    assert at["model"]["threshold"] == confidence
    assert at["predictions"][0]["accepted"] is True

    _patch(alice_api, model, {"threshold": math.nextafter(confidence, 1)})
    above = _predict(alice_api, f"/api/v1/projects/{alice_project.pk}/predict/", image)
    assert above["predictions"][0]["accepted"] is False
    # The answer itself does not change: only whether it is trusted.
    assert above["predictions"][0]["label"] == at["predictions"][0]["label"]
    assert above["predictions"][0]["confidence"] == confidence
