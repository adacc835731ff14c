"""Every response carries X-Request-ID; a proxy's well-formed id is kept, anything else replaced."""

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.predictions.error_urls")]


def test_it_gives_every_request_its_own_id(client):
    first, second = client.get("/test/fine/"), client.get("/api/v1/no-such-endpoint/")
    assert first.status_code == 200 and second.status_code == 404
    assert len({first["X-Request-ID"], second["X-Request-ID"]}) == 2


def test_it_keeps_a_well_formed_id_from_a_proxy(client):
    response = client.get("/test/fine/", HTTP_X_REQUEST_ID="nginx-4f1c2a9be07d")
    assert response["X-Request-ID"] == "nginx-4f1c2a9be07d"


@pytest.mark.parametrize("sent", ["short", "has space in it", "line\\nbreak-injected-here", "x" * 65])
def test_it_replaces_an_id_that_could_forge_log_lines(client, sent):
    response = client.get("/test/fine/", HTTP_X_REQUEST_ID=sent)
    assert response["X-Request-ID"] != sent and len(response["X-Request-ID"]) == 32
