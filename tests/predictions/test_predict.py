import base64
import io
import threading
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from tests.predictions.conftest import CLASSES, api_client, copy_model_files, make_model, shape_png
from webapp.core import storage
from webapp.predictions.models import PredictionLog
from webapp.predictions.serving import model_cache
from workers.ml.hashing import file_sha256

pytestmark = pytest.mark.django_db


def _probe_images():
    return [(name, shape_png(name, seed=9000 + i)) for i, name in enumerate(CLASSES * 2)]


def _expected(tiny_model, images):
    """What the same model, loaded in-process, answers for these images."""
    return tiny_model["loaded"].predict([data for _, data in images])


def _upload(data: bytes, name: str = "x.png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def _assert_matches(body, tiny_model, images):
    probs = _expected(tiny_model, images)
    names = tiny_model["class_names"]
    assert len(body["predictions"]) == len(images)
    for row, prediction in zip(probs, body["predictions"], strict=True):
        assert prediction["label"] == names[int(np.argmax(row))]
        assert prediction["confidence"] == pytest.approx(float(row.max()), abs=1e-5)
        for i, name in enumerate(names):
            assert prediction["probabilities"][name] == pytest.approx(float(row[i]), abs=1e-5)


def _post(client, url, images, **extra):
    return client.post(url, {"image": [_upload(data) for _, data in images], **extra}, format="multipart")


def test_it_predicts_multipart_images_in_input_order(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model, published=True)
    images = _probe_images()
    response = _post(alice_api, f"/api/v1/projects/{alice_project.pk}/predict/", images)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == {"id": model.pk, "version": model.version, "project": alice_project.pk, "threshold": None}
    assert all(p["accepted"] for p in body["predictions"])  # no threshold: every answer stands
    _assert_matches(body, tiny_model, images)
    # The tiny model learned the shapes: at least most probes are right.
    right = sum(p["label"] == name for p, (name, _) in zip(body["predictions"], images, strict=True))
    assert right >= 4


def test_it_predicts_json_b64_instances(alice_api, alice_project, tiny_model):
    make_model(alice_project, tiny_model, published=True)
    images = _probe_images()[:3]
    payload = {"instances": [{"b64": base64.b64encode(data).decode()} for _, data in images]}
    response = alice_api.post(f"/api/v1/projects/{alice_project.pk}/predict/", payload, format="json")
    assert response.status_code == 200, response.content
    _assert_matches(response.json(), tiny_model, images)


def test_it_keeps_only_the_top_k_classes_most_probable_first(alice_api, alice_project, tiny_model):
    make_model(alice_project, tiny_model, published=True)
    images = _probe_images()[:2]
    response = _post(alice_api, f"/api/v1/projects/{alice_project.pk}/predict/", images, top_k="2")
    assert response.status_code == 200
    for prediction in response.json()["predictions"]:
        probabilities = list(prediction["probabilities"].items())
        assert len(probabilities) == 2
        assert probabilities[0] == (prediction["label"], prediction["confidence"])
        assert probabilities[0][1] >= probabilities[1][1]


def test_it_predicts_with_a_given_unpublished_model(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model, published=False)
    images = _probe_images()[:2]
    response = _post(alice_api, f"/api/v1/models/{model.pk}/predict/", images)
    assert response.status_code == 200
    assert response.json()["model"]["id"] == model.pk
    _assert_matches(response.json(), tiny_model, images)


def test_it_answers_409_when_the_project_has_no_published_model(alice_api, alice_project, tiny_model):
    make_model(alice_project, tiny_model, published=False)
    response = _post(alice_api, f"/api/v1/projects/{alice_project.pk}/predict/", _probe_images()[:1])
    assert response.status_code == 409
    assert "no published model" in response.json()["detail"]


def test_it_answers_404_for_another_users_project_and_model(alice_api, bob_project, tiny_model):
    model = make_model(bob_project, tiny_model, published=True)
    images = _probe_images()[:1]
    assert _post(alice_api, f"/api/v1/projects/{bob_project.pk}/predict/", images).status_code == 404
    assert _post(alice_api, f"/api/v1/models/{model.pk}/predict/", images).status_code == 404
    assert not PredictionLog.objects.exists()


def test_it_answers_401_without_credentials(client, alice_project):
    response = client.post(f"/api/v1/projects/{alice_project.pk}/predict/")
    assert response.status_code == 401
    assert response.json()["errors"] == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"hello, not an image", "not an image"),
        (shape_png("circle", 1, fmt="JPEG")[:200], "corrupt"),
        (b"", "empty"),
    ],
)
def test_it_names_the_bad_input_and_the_reason(alice_api, alice_project, tiny_model, data, reason):
    make_model(alice_project, tiny_model, published=True)
    good = shape_png("square", 3)
    response = alice_api.post(
        f"/api/v1/projects/{alice_project.pk}/predict/",
        {"image": [_upload(good), _upload(good), _upload(data, "holiday.jpg")]},
        format="multipart",
    )
    assert response.status_code == 400
    body = response.json()
    assert reason in body["detail"]
    assert body["detail"].startswith("image[2] (holiday.jpg) (input 2): ")
    assert body["errors"] == [{"field": "image[2]", "index": 2, "message": body["detail"]}]


def test_it_refuses_images_with_too_many_pixels(alice_api, alice_project, tiny_model, settings):
    make_model(alice_project, tiny_model, published=True)
    settings.TL_IMAGE_MAX_PIXELS = 32 * 32
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="PNG")
    payload = {"instances": [{"b64": base64.b64encode(shape_png("circle", 1)).decode()},
                             {"b64": base64.b64encode(buffer.getvalue()).decode()}]}  # fmt: skip
    response = alice_api.post(f"/api/v1/projects/{alice_project.pk}/predict/", payload, format="json")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["index"] == 1 and error["field"] == "instances[1].b64"
    assert "too many pixels" in error["message"] and "64x64" in error["message"]


def test_it_refuses_an_image_over_the_byte_limit(alice_api, alice_project, tiny_model, settings):
    make_model(alice_project, tiny_model, published=True)
    settings.TL_PREDICT_MAX_IMAGE_BYTES = 100
    response = _post(alice_api, f"/api/v1/projects/{alice_project.pk}/predict/", _probe_images()[:1])
    assert response.status_code == 400
    assert "image[0] (x.png) (input 0): too large" in response.json()["detail"]


def test_it_refuses_an_empty_request(alice_api, alice_project, tiny_model):
    make_model(alice_project, tiny_model, published=True)
    url = f"/api/v1/projects/{alice_project.pk}/predict/"
    for response in (alice_api.post(url, {}, format="json"), alice_api.post(url, {"instances": []}, format="json")):
        assert response.status_code == 400
        assert response.json()["detail"].startswith("empty request")


def test_it_refuses_unknown_fields(alice_api, alice_project, tiny_model):
    make_model(alice_project, tiny_model, published=True)
    url = f"/api/v1/projects/{alice_project.pk}/predict/"
    image = shape_png("circle", 1)
    multipart = alice_api.post(url, {"image": [_upload(image)], "picture": [_upload(image)]}, format="multipart")
    assert multipart.status_code == 400
    assert multipart.json()["errors"][0]["field"] == "picture"
    assert "unknown field 'picture'" in multipart.json()["detail"]
    json_body = {"instances": [{"b64": base64.b64encode(image).decode(), "key": "a"}], "signature": "x"}
    response = alice_api.post(url, json_body, format="json")
    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"signature", "instances[0].key"}


def test_it_refuses_bad_base64_and_bad_top_k(alice_api, alice_project, tiny_model):
    make_model(alice_project, tiny_model, published=True)
    url = f"/api/v1/projects/{alice_project.pk}/predict/"
    response = alice_api.post(url, {"instances": [{"b64": "@@not base64@@"}], "top_k": 0}, format="json")
    assert response.status_code == 400
    messages = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert "not valid base64" in messages["instances[0].b64"]
    assert "top_k must be an integer from 1 to 100" in messages["top_k"]


def test_it_refuses_more_images_than_the_batch_limit(alice_api, alice_project, tiny_model, settings):
    make_model(alice_project, tiny_model, published=True)
    settings.TL_PREDICT_MAX_IMAGES = 2
    response = _post(alice_api, f"/api/v1/projects/{alice_project.pk}/predict/", _probe_images()[:3])
    assert response.status_code == 400
    assert "too many images: 3 sent, the limit is 2" in response.json()["detail"]


def test_it_caps_the_json_body_size(alice_api, alice_project, tiny_model, settings):
    make_model(alice_project, tiny_model, published=True)
    settings.TL_PREDICT_MAX_BODY_BYTES = 2048
    payload = {"instances": [{"b64": base64.b64encode(b"x" * 4096).decode()}]}
    response = alice_api.post(f"/api/v1/projects/{alice_project.pk}/predict/", payload, format="json")
    assert response.status_code == 413
    assert "TL_PREDICT_MAX_BODY_BYTES" in response.json()["detail"]


def test_it_answers_415_for_other_content_types(alice_api, alice_project, tiny_model):
    make_model(alice_project, tiny_model, published=True)
    response = alice_api.post(
        f"/api/v1/projects/{alice_project.pk}/predict/", b"raw", content_type="application/octet-stream"
    )
    assert response.status_code == 415
    assert "application/octet-stream" in response.json()["detail"]


def test_it_logs_each_call_with_its_status(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model, published=True)
    url = f"/api/v1/projects/{alice_project.pk}/predict/"
    assert _post(alice_api, url, _probe_images()[:3]).status_code == 200
    assert _post(alice_api, url, [("bad", b"nope")]).status_code == 400
    logs = list(PredictionLog.objects.order_by("created_at", "pk").values("model", "image_count", "status_code"))
    assert logs == [
        {"model": model.pk, "image_count": 3, "status_code": 200},
        {"model": model.pk, "image_count": 1, "status_code": 400},
    ]
    assert all(entry.latency_ms > 0 for entry in PredictionLog.objects.all())
    assert not (storage.storage_root() / "predictions" / str(alice_project.pk)).exists()


def test_it_stores_images_only_when_the_project_opted_in(alice_api, alice_project, tiny_model):
    make_model(alice_project, tiny_model, published=True)
    alice_project.store_predictions = True
    alice_project.save()
    images = _probe_images()[:2]
    assert _post(alice_api, f"/api/v1/projects/{alice_project.pk}/predict/", images).status_code == 200
    folder = storage.storage_root() / "predictions" / str(alice_project.pk)
    stored = sorted(folder.rglob("*.png"))
    assert [p.read_bytes() for p in stored] == [data for _, data in images]


def test_it_serves_a_newly_published_model_without_a_restart(alice_api, alice_project, tiny_model):
    old = make_model(alice_project, tiny_model, published=True)
    new = make_model(alice_project, tiny_model, path=copy_model_files(tiny_model, "tiny-copy-new"))
    url = f"/api/v1/projects/{alice_project.pk}/predict/"
    assert _post(alice_api, url, _probe_images()[:1]).json()["model"]["id"] == old.pk
    published = alice_api.post(f"/api/v1/models/{new.pk}/publish/")
    assert published.status_code == 200 and published.json()["published"] is True
    assert new.pk in model_cache().model_ids()  # publishing warmed it
    assert _post(alice_api, url, _probe_images()[:1]).json()["model"]["id"] == new.pk


@pytest.mark.django_db(transaction=True)
def test_it_finishes_a_request_in_flight_on_the_old_model(alice, tiny_model, fresh_model_cache):
    from webapp.projects.models import Project

    project = Project.objects.create(owner=alice, name="In flight")
    old = make_model(project, tiny_model, published=True)
    new = make_model(project, tiny_model, path=copy_model_files(tiny_model, "tiny-copy-flight"))
    loaded_old = model_cache().get(old)
    entered, release = threading.Event(), threading.Event()
    original = loaded_old.run

    def gated(batch):
        entered.set()
        assert release.wait(30)
        return original(batch)

    loaded_old.run = gated
    url = f"/api/v1/projects/{project.pk}/predict/"
    result = {}
    images = _probe_images()[:2]
    worker = threading.Thread(target=lambda: result.update(r=_post(api_client(alice), url, images)))
    worker.start()
    try:
        assert entered.wait(30)
        assert api_client(alice).post(f"/api/v1/models/{new.pk}/publish/").status_code == 200
        model_cache().clear()  # even dropped from the cache, the old model finishes its request
        release.set()
        worker.join(30)
    finally:
        release.set()
        loaded_old.run = original
    assert result["r"].status_code == 200
    assert result["r"].json()["model"]["id"] == old.pk
    _assert_matches(result["r"].json(), tiny_model, images)
    assert _post(api_client(alice), url, images[:1]).json()["model"]["id"] == new.pk


@pytest.mark.django_db(transaction=True)
def test_a_process_decodes_and_predicts_for_at_most_tl_predict_concurrency_requests_at_once(
    alice, tiny_model, fresh_model_cache, settings, monkeypatch
):
    from webapp.predictions import services
    from webapp.projects.models import Project

    settings.TL_PREDICT_CONCURRENCY = 1
    monkeypatch.setattr(services, "_work_slots", None)  # made again from the setting above
    project = Project.objects.create(owner=alice, name="One at a time")
    loaded = model_cache().get(make_model(project, tiny_model, published=True))
    entered, release, second_decodes = threading.Event(), threading.Event(), threading.Event()
    original_run, original_check, decoding = loaded.run, services.images_check, []

    def gated(batch):
        entered.set()
        assert release.wait(30)
        return original_run(batch)

    def counted(**kwargs):
        decoding.append(threading.get_ident())
        if len(decoding) == 2:
            second_decodes.set()
        return original_check(**kwargs)

    loaded.run = gated
    monkeypatch.setattr(services, "images_check", counted)
    url, images, results = f"/api/v1/projects/{project.pk}/predict/", _probe_images()[:2], {}
    first = threading.Thread(target=lambda: results.update(first=_post(api_client(alice), url, images)))
    second = threading.Thread(target=lambda: results.update(second=_post(api_client(alice), url, images)))
    first.start()
    try:
        assert entered.wait(30)
        second.start()
        # The first request holds the only slot while it predicts: the second may not even decode.
        assert not second_decodes.wait(3), "a second request decoded while the first held the only slot"
        release.set()
        first.join(30), second.join(30)
    finally:
        release.set()
        loaded.run = original_run
    assert second_decodes.is_set() and len(set(decoding)) == 2
    assert results["first"].status_code == results["second"].status_code == 200
    _assert_matches(results["second"].json(), tiny_model, images)


def test_it_answers_503_when_the_model_file_fails_its_checksum(alice_api, alice_project, tiny_model):
    model = make_model(alice_project, tiny_model, path=copy_model_files(tiny_model, "tiny-copy-bad"), checksum="0" * 64)
    response = _post(alice_api, f"/api/v1/models/{model.pk}/predict/", _probe_images()[:1])
    assert response.status_code == 503
    assert "does not match its recorded checksum" in response.json()["detail"]
    assert PredictionLog.objects.get().status_code == 503


def test_it_throttles_per_token_with_retry_after(alice, bob, alice_project, tiny_model, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"predict": "3/minute", "auth": "9/minute"},
    }
    model = make_model(alice_project, tiny_model, published=True)
    url = f"/api/v1/projects/{alice_project.pk}/predict/"
    alice_api = api_client(alice)
    statuses = [_post(alice_api, url, _probe_images()[:1]).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = _post(alice_api, url, _probe_images()[:1])
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["detail"].lower()
    # Another token has its own budget.
    assert _post(api_client(bob), f"/api/v1/models/{model.pk}/predict/", _probe_images()[:1]).status_code == 404


def _blank_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def test_it_refuses_a_request_that_would_decode_too_many_pixels_before_decoding_any(
    alice_api, alice_project, tiny_model, settings
):
    # The break-it reproduction: 32 blank 6300x6300 PNGs, each under the per-image limit, a tiny body,
    # took a web worker from 916 MB to 4.9 GB when every image was decoded whole and held at once.
    make_model(alice_project, tiny_model, published=True)
    blank = _blank_png(6300, 6300)
    assert len(blank) < 10_000
    images = [("circle", blank)] * 32
    response = _post(alice_api, f"/api/v1/projects/{alice_project.pk}/predict/", images)
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert "These 32 images would decode 1,270,080,000 pixels in all" in detail
    assert "at most 100,000,000 (TL_PREDICT_MAX_REQUEST_PIXELS)" in detail
    log = PredictionLog.objects.get()
    assert (log.status_code, log.image_count) == (413, 32)


def test_it_counts_a_large_jpeg_at_the_scale_it_is_decoded_at(alice_api, alice_project, tiny_model, settings):
    make_model(alice_project, tiny_model, published=True)
    settings.TL_PREDICT_MAX_REQUEST_PIXELS = 600_000
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000), (200, 30, 30)).save(buffer, format="JPEG", quality=80)
    jpeg = buffer.getvalue()  # 12 MP, decoded at 1/8 scale for a 32x32 model: 187,500 pixels
    response = _post(alice_api, f"/api/v1/projects/{alice_project.pk}/predict/", [("a", jpeg)] * 3)
    assert response.status_code == 200, response.content
    response = _post(alice_api, f"/api/v1/projects/{alice_project.pk}/predict/", [("a", jpeg)] * 4)
    assert response.status_code == 413
    assert "would decode 750,000 pixels" in response.json()["detail"]


def test_a_model_that_fails_to_load_does_not_stop_other_models_serving(alice_api, alice_project, tiny_model):
    good = make_model(alice_project, tiny_model, published=True)
    broken_path = copy_model_files(tiny_model, "tiny-copy-truncated")
    keras_file = Path(broken_path) / "model.keras"
    keras_file.write_bytes(keras_file.read_bytes()[:5000])  # a cut file whose checksum is recorded
    broken = make_model(alice_project, tiny_model, path=broken_path, checksum=file_sha256(keras_file))
    response = _post(alice_api, f"/api/v1/models/{broken.pk}/predict/", _probe_images()[:1])
    assert response.status_code == 503
    body = response.json()
    assert "Keras could not load the saved model back" in body["detail"] and "/" not in body["detail"].split(":")[0]
    ok = _post(alice_api, f"/api/v1/projects/{alice_project.pk}/predict/", _probe_images()[:1])
    assert ok.status_code == 200 and ok.json()["model"]["id"] == good.pk
