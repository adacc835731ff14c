import pytest

from webapp.projects.models import Project

pytestmark = pytest.mark.django_db


def test_it_lists_only_my_projects(alice_api, alice_project, bob_project):
    response = alice_api.get("/api/v1/projects/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert [p["name"] for p in body["results"]] == ["Shapes"]


def test_it_creates_a_project(alice_api, alice):
    response = alice_api.post("/api/v1/projects/", {"name": " Flowers ", "description": "petals"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Flowers" and body["store_predictions"] is False
    assert Project.objects.get(pk=body["id"]).owner == alice


def test_it_names_the_field_of_a_duplicate_name(alice_api, alice_project):
    response = alice_api.post("/api/v1/projects/", {"name": "Shapes"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "name"
    assert "already have a project named 'Shapes'" in response.json()["detail"]


def test_it_refuses_unknown_project_fields(alice_api):
    response = alice_api.post("/api/v1/projects/", {"name": "A", "colour": "red"}, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "colour"


def test_it_updates_and_deletes_a_project(alice_api, alice_project):
    url = f"/api/v1/projects/{alice_project.pk}/"
    response = alice_api.patch(url, {"store_predictions": True}, format="json")
    assert response.status_code == 200 and response.json()["store_predictions"] is True
    assert alice_api.get(url).json()["name"] == "Shapes"
    assert alice_api.delete(url).status_code == 204
    assert not Project.objects.filter(pk=alice_project.pk).exists()


def test_it_hides_another_users_project(alice_api, bob_project):
    url = f"/api/v1/projects/{bob_project.pk}/"
    assert alice_api.get(url).status_code == 404
    assert alice_api.patch(url, {"name": "mine"}, format="json").status_code == 404
    assert alice_api.delete(url).status_code == 404
    bob_project.refresh_from_db()
    assert bob_project.name == "Bob's shapes"
