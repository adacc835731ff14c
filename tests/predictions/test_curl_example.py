import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory

pytestmark = pytest.mark.django_db


def test_it_shows_the_projects_real_predict_url_on_its_page(client, alice, alice_project, settings):
    settings.ALLOWED_HOSTS = ["lab.example.org"]
    client.force_login(alice)
    response = client.get(f"/projects/{alice_project.pk}/", HTTP_HOST="lab.example.org:8443", secure=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert f"https://lab.example.org:8443/api/v1/projects/{alice_project.pk}/predict/" in html
    assert "Authorization: Token $TL_TOKEN" in html
    # Valid bash as pasted: the placeholder is quoted, never a <redirection>.
    assert "export TL_TOKEN='<span data-token-slot>paste-your-token-here</span>'" in html


def test_it_renders_the_partial_for_any_host(alice_project, settings):
    settings.ALLOWED_HOSTS = ["10.0.0.5"]
    request = RequestFactory().get("/", HTTP_HOST="10.0.0.5:8000")
    html = render_to_string("predictions/curl_example.html", {"project": alice_project}, request=request)
    assert f"http://10.0.0.5:8000/api/v1/projects/{alice_project.pk}/predict/" in html
    assert '-F "image=@photo.jpg"' in html and "instances" in html


def test_a_token_asked_for_by_the_page_comes_back_as_json_once(client, alice):
    from webapp.accounts.models import ApiToken
    from webapp.accounts.services import token_digest

    client.force_login(alice)
    response = client.post("/accounts/me/tokens/", HTTP_ACCEPT="application/json")
    assert response.status_code == 201
    body = response.json()
    token = ApiToken.objects.get(user=alice)
    assert token.digest == token_digest(body["key"]) and body["prefix"] == token.prefix
    assert body["message"].startswith(f"A new token (starting {token.prefix}) is filled in below.")


def test_a_script_whose_session_expired_gets_401_json_not_the_sign_in_page(client):
    response = client.post("/accounts/me/tokens/", HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
