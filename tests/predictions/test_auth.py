import pytest
from rest_framework.authtoken.models import Token

from tests.predictions.conftest import api_client

pytestmark = pytest.mark.django_db


def test_it_gives_a_token_for_username_and_password(client, alice):
    response = client.post("/api/v1/auth/token/", {"username": "alice", "password": "alice-password-1"})
    assert response.status_code == 200
    token = response.json()["token"]
    assert token == Token.objects.get(user=alice).key
    again = client.post(
        "/api/v1/auth/token/", {"username": "alice", "password": "alice-password-1"}, "application/json"
    )
    assert again.json()["token"] == token
    listed = client.get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Token {token}")
    assert listed.status_code == 200


def test_it_refuses_a_wrong_password(client, alice):
    response = client.post("/api/v1/auth/token/", {"username": "alice", "password": "guess"})
    assert response.status_code == 400
    assert response.json()["detail"] == "Unable to log in with provided credentials."
    assert not Token.objects.exists()


def test_it_names_a_missing_field(client):
    response = client.post("/api/v1/auth/token/", {"username": "alice"})
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "password", "index": None, "message": "This field is required."}]


def test_it_slows_down_password_guessing(client, alice, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"predict": "9/minute", "auth": "2/minute"},
    }
    statuses = [
        client.post("/api/v1/auth/token/", {"username": "alice", "password": "x"}).status_code for _ in range(3)
    ]
    assert statuses == [400, 400, 429]


def test_it_rotates_the_token_and_the_old_one_stops_working(alice):
    old = api_client(alice)
    old_key = Token.objects.get(user=alice).key
    response = old.post("/api/v1/auth/token/rotate/")
    assert response.status_code == 201
    new_key = response.json()["token"]
    assert new_key != old_key
    assert old.get("/api/v1/projects/").status_code == 401
    assert api_client(alice).get("/api/v1/projects/").status_code == 200
    assert Token.objects.get(user=alice).key == new_key


def test_it_accepts_the_browser_session(client, alice):
    client.force_login(alice)
    assert client.get("/api/v1/projects/").status_code == 200


def test_it_asks_a_session_for_its_csrf_token(alice):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/api/v1/projects/", {"name": "x"}, content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_it_answers_401_with_an_error_body(client):
    response = client.get("/api/v1/projects/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided.", "errors": []}
