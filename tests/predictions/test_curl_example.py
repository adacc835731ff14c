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
    assert "export TL_TOKEN=&lt;your API token&gt;" in html


def test_it_renders_the_partial_for_any_host(alice_project, settings):
    settings.ALLOWED_HOSTS = ["10.0.0.5"]
    request = RequestFactory().get("/", HTTP_HOST="10.0.0.5:8000")
    html = render_to_string("predictions/curl_example.html", {"project": alice_project}, request=request)
    assert f"http://10.0.0.5:8000/api/v1/projects/{alice_project.pk}/predict/" in html
    assert '-F "image=@photo.jpg"' in html and "instances" in html
