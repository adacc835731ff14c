"""Django's own error answers are the app's pages, with a way back, for people; JSON stays JSON."""

import pytest
from django.test import RequestFactory

from webapp.error_views import server_error

NAV = ('href="/projects/"', 'href="/"', 'href="/api/v1/docs/"')


def assert_styled(response, status: int, heading: str):
    body = response.content.decode()
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    assert f'<h1 id="error-heading">{heading}</h1>' in body
    assert f"Error {status}" in body
    assert "/static/css/app.css" in body  # the app's look, not Django's bare page
    for link in NAV:
        assert link in body
    return body


def test_a_missing_page_says_so_and_offers_the_way_back(client, alice):
    client.force_login(alice)
    body = assert_styled(client.get("/projects/999999/"), 404, "Page not found")
    assert "<code>/projects/999999/</code>" in body
    assert ">alice<" in body or "Sign out" in body  # the signed-in navigation is there


def test_a_page_for_staff_only_refuses_others_with_a_styled_403(client, alice):
    client.force_login(alice)
    assert_styled(client.get("/dashboard/"), 403, "You do not have permission to do this")


def test_a_bad_host_gets_the_styled_400(client):
    assert_styled(client.get("/", HTTP_HOST="evil.example"), 400, "The request was refused")


@pytest.mark.django_db
def test_the_500_page_renders_without_a_request_context():
    # Django renders 500.html with no context at all: the page must still stand, with its links.
    request = RequestFactory().get("/projects/")
    assert_styled(server_error(request), 500, "Something went wrong on our side")


def test_api_paths_keep_their_json_errors(client, alice):
    client.force_login(alice)
    response = client.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["detail"] == "No API endpoint at /api/v1/nothing-here/."
