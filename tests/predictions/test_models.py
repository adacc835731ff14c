import base64
from pathlib import Path

import pytest

from tests.predictions.conftest import copy_model_files, make_model, shape_png
from webapp.predictions.serving import model_cache
from workers.ml.hashing import file_sha256

pytestmark = pytest.mark.django_db


def test_it_lists_a_projects_models_newest_first(alice_api, alice_project, tiny_model):
    first, second = make_model(alice_project, tiny_model), make_model(alice_project, tiny_model)
    response = alice_api.get(f"/api/v1/projects/{alice_project.pk}/models/")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [m["id"] for m in results] == [second.pk, first.pk]
    assert results[0]["class_names"] == ["circle", "square", "triangle"] and results[0]["image_size"] == [32, 32]


def test_it_publishes_one_model_per_project_and_warms_it(alice_api, alice_project, tiny_model, fresh_model_cache):
    first, second = make_model(alice_project, tiny_model, published=True), make_model(alice_project, tiny_model)
    response = alice_api.post(f"/api/v1/models/{second.pk}/publish/")
    assert response.status_code == 200
    assert response.json()["published"] is True and response.json()["published_at"]
    first.refresh_from_db()
    assert first.published is False
    assert model_cache().model_ids() == [second.pk]


def test_it_hides_another_users_models(alice_api, bob_project, tiny_model):
    model = make_model(bob_project, tiny_model)
    assert alice_api.get(f"/api/v1/projects/{bob_project.pk}/models/").status_code == 404
    assert alice_api.post(f"/api/v1/models/{model.pk}/publish/").status_code == 404
    model.refresh_from_db()
    assert model.published is False


def test_a_model_that_cannot_be_served_is_never_published(alice_api, alice_project, tiny_model, fresh_model_cache):
    serving = make_model(alice_project, tiny_model, published=True)
    path = copy_model_files(tiny_model, "tiny-copy-unloadable")
    keras_file = Path(path) / "model.keras"
    keras_file.write_bytes(keras_file.read_bytes()[:5000])
    broken = make_model(alice_project, tiny_model, path=path, checksum=file_sha256(keras_file))
    response = alice_api.post(f"/api/v1/models/{broken.pk}/publish/")
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert detail.startswith(f"Model v{broken.version} cannot be served, so it was not published (")
    assert detail.endswith(f"model v{serving.version} is still served.")
    serving.refresh_from_db()
    broken.refresh_from_db()
    assert serving.published is True and broken.published is False
    predict = alice_api.post(
        f"/api/v1/projects/{alice_project.pk}/predict/",
        {"instances": [{"b64": base64.b64encode(shape_png("circle", 1)).decode()}]},
        format="json",
    )
    assert predict.status_code == 200 and predict.json()["model"]["id"] == serving.pk


def test_the_models_page_refuses_to_publish_a_model_that_does_not_load(client, alice, alice_project, tiny_model):
    path = copy_model_files(tiny_model, "tiny-copy-unloadable-page")
    (Path(path) / "model.keras").write_bytes(b"not a keras file")
    broken = make_model(alice_project, tiny_model, path=path, checksum=file_sha256(Path(path) / "model.keras"))
    client.force_login(alice)
    response = client.post(f"/projects/{alice_project.pk}/models/{broken.pk}/publish/", follow=True)
    assert response.status_code == 200
    assert "cannot be served, so it was not published" in response.content.decode()
    broken.refresh_from_db()
    assert broken.published is False
