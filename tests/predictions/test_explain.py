"""Why the model said it: explain=true on predict returns a Grad-CAM overlay per image (bounded per
request, off by default), and the galleries' overlay images; the real tiny model throughout."""

import base64
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from tests.analysis import analysed_experiment
from tests.predictions.conftest import CLASSES, make_model, shape_png

pytestmark = pytest.mark.django_db


def _instances(n):
    return [{"b64": base64.b64encode(shape_png(CLASSES[i % 3], seed=9100 + i)).decode()} for i in range(n)]


def _png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data), formats=["PNG"])
    image.load()
    return image


def test_explain_adds_a_heatmap_png_per_image(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model)
    response = alice_api.post(
        f"/api/v1/models/{model.pk}/predict/", {"instances": _instances(2), "explain": True}, format="json"
    )
    assert response.status_code == 200, response.content
    for prediction in response.json()["predictions"]:
        explanation = prediction["explanation"]
        assert explanation["layer"] == "block5_conv3"  # VGG16's last convolution
        image = _png(base64.b64decode(explanation["png_base64"]))
        assert image.size == (32, 32) and image.mode == "RGB"  # the model's input size


def test_explain_is_off_by_default_and_works_in_multipart(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model)
    url = f"/api/v1/models/{model.pk}/predict/"
    plain = alice_api.post(url, {"instances": _instances(1)}, format="json").json()
    assert "explanation" not in plain["predictions"][0]
    upload = SimpleUploadedFile("circle.png", shape_png("circle", seed=1), content_type="image/png")
    body = alice_api.post(url, {"image": [upload], "explain": "true"}, format="multipart").json()
    assert _png(base64.b64decode(body["predictions"][0]["explanation"]["png_base64"])).size == (32, 32)


def test_explaining_more_images_than_the_bound_is_refused(alice_api, alice_project, tiny_model, settings):
    settings.TL_EXPLAIN_MAX_IMAGES = 2
    model = make_model(alice_project, tiny_model)
    url = f"/api/v1/models/{model.pk}/predict/"
    response = alice_api.post(url, {"instances": _instances(3), "explain": True}, format="json")
    assert response.status_code == 400
    message = response.json()["errors"][0]["message"]
    assert "limited to 2 images per request (TL_EXPLAIN_MAX_IMAGES), and 3 were sent" in message
    assert alice_api.post(url, {"instances": _instances(3)}, format="json").status_code == 200  # without explain
    wrong = alice_api.post(url, {"instances": _instances(1), "explain": "yes"}, format="json")
    assert wrong.status_code == 400 and "explain must be true or false" in wrong.json()["errors"][0]["message"]


def test_the_schema_documents_explain(alice_api):
    schema = alice_api.get("/api/v1/schema/?format=json").json()
    components = schema["components"]["schemas"]
    assert "TL_EXPLAIN_MAX_IMAGES" in components["PredictJSONRequest"]["properties"]["explain"]["description"]
    assert set(components["Explanation"]["properties"]) == {"layer", "png_base64"}
    assert "explanation" in components["Prediction"]["properties"]


def test_a_gallery_overlay_is_a_png_of_the_stored_image_for_its_owner_only(client, alice, bob, tiny_model):
    experiment = analysed_experiment(alice, tiny_model)
    model = experiment.models.get()
    url = reverse("predictions:explanation", args=[model.pk]) + "?path=validation/square/m0.png"
    client.force_login(alice)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert _png(response.content).size == (32, 32)
    assert client.get(url).content == response.content  # from the cache the second time, identical
    assert client.get(url.replace("m0.png", "nothing.png")).status_code == 404
    assert client.get(reverse("predictions:explanation", args=[model.pk]) + "?path=../x").status_code == 404
    client.force_login(bob)
    assert client.get(url).status_code == 404
