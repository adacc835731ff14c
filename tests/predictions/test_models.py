import pytest

from tests.predictions.conftest import make_model
from webapp.predictions.serving import model_cache

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
