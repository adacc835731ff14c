import pytest
from django.test import override_settings

from tests.helpers import celery_worker


def _health(client):
    response = client.get("/api/v1/health/")
    return response.status_code, response.json()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_reports_a_live_worker(client, clean_broker):
    with celery_worker("health", queues="default") as (_proc, node, _log):
        status, body = _health(client)
    assert status == 200
    assert body["status"] == "ok"
    assert body["database"]["ok"] and body["broker"]["ok"]
    assert node in body["workers"]["hostnames"]


@pytest.mark.django_db
def test_it_reports_no_worker_without_failing(client, clean_broker):
    status, body = _health(client)
    assert status == 200
    assert body["status"] == "degraded"
    assert body["workers"] == {"ok": False, "count": 0, "hostnames": [], "detail": "no worker answered"}


@pytest.mark.django_db
def test_it_answers_503_when_the_broker_is_unreachable(client):
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        status, body = _health(client)
    assert status == 503
    assert body["broker"]["ok"] is False
    assert "broker unreachable" in body["broker"]["detail"]
    assert body["database"]["ok"] is True
    assert body["workers"]["count"] is None


@pytest.mark.django_db
def test_it_does_not_show_the_path_of_an_unreachable_broker_socket(client, tmp_path):
    socket = tmp_path / "run" / "redis.sock"
    with override_settings(REDIS_URL=f"redis+socket://{socket}"):
        status, body = _health(client)
    assert status == 503 and body["broker"]["detail"].startswith("broker unreachable")
    assert "redis.sock" in body["broker"]["detail"] and str(tmp_path) not in body["broker"]["detail"]


@pytest.mark.django_db
def test_it_reports_the_object_store(client, object_store, settings):
    status, body = _health(client)
    assert status == 200
    assert body["storage"] == {"ok": True, "detail": f"{object_store} at {settings.AWS_S3_ENDPOINT_URL}"}


@pytest.mark.django_db
def test_it_answers_503_naming_the_object_store_when_it_does_not_answer(client, object_store, settings):
    settings.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:1"
    status, body = _health(client)
    assert status == 503 and body["status"] == "down"
    assert body["storage"]["ok"] is False
    assert body["storage"]["detail"].startswith(f"the object store {object_store} at http://127.0.0.1:1 failed")
