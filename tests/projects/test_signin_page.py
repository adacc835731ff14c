"""/accounts/login/: password guessing is limited per account and per client address."""

import pytest
from django.test import override_settings

from webapp.core.redis import redis_client
from webapp.core.signin_limits import KEY_PREFIX

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


@pytest.fixture(autouse=True)
def fresh_counters():
    client = redis_client(timeout=2)
    keys = list(client.scan_iter(f"{KEY_PREFIX}*"))
    if keys:
        client.delete(*keys)
    yield


def _post(client, username, password, **extra):
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def test_it_signs_in_with_the_right_password(client, alice):
    response = _post(client, "alice", "alice-password-1")
    assert response.status_code == 302
    assert client.get("/accounts/me/").status_code == 200


def test_forty_wrong_passwords_are_answered_429_after_the_limit(client, alice, settings):
    # The break-it reproduction: 40 wrong passwords used to be answered 200 every time.
    responses = [_post(client, "alice", f"guess-{i}") for i in range(40)]
    limit = settings.TL_SIGNIN_LIMIT_PER_ACCOUNT
    assert [r.status_code for r in responses] == [200] * limit + [429] * (40 - limit)
    assert "Please enter a correct username and password" in responses[0].content.decode()
    refused = responses[limit]
    page = refused.content.decode()
    assert 'role="alert"' in page
    assert "Too many failed sign-ins for the account &#x27;alice&#x27;" in page
    assert 1 <= int(refused["Retry-After"]) <= settings.TL_SIGNIN_WINDOW_SECONDS
    # The right password does not get through the lock either.
    assert _post(client, "alice", "alice-password-1").status_code == 429
    assert client.get("/accounts/me/").status_code == 302


def test_guessing_many_accounts_from_one_address_is_answered_429(client, settings):
    settings.TL_SIGNIN_LIMIT_PER_ADDRESS = 4
    statuses = [_post(client, f"user{i}", "guess", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}").status_code for i in range(6)]
    assert statuses == [200] * 4 + [429] * 2
    assert "from your address (127.0.0.1)" in _post(client, "user9", "guess").content.decode()


def test_someone_elses_guessing_does_not_lock_out_another_account(client, alice, bob, settings):
    settings.TL_SIGNIN_LIMIT_PER_ADDRESS = 5
    for i in range(20):
        _post(client, "alice", f"guess-{i}", REMOTE_ADDR="198.51.100.7")
    assert _post(client, "alice", "alice-password-1", REMOTE_ADDR="198.51.100.7").status_code == 429
    assert _post(client, "bob", "bob-password-1", REMOTE_ADDR="203.0.113.20").status_code == 302


def test_a_missing_field_is_not_counted_as_an_attempt(client, alice, settings):
    settings.TL_SIGNIN_LIMIT_PER_ACCOUNT = 1
    for _ in range(3):
        response = _post(client, "alice", "")
        assert response.status_code == 200
        assert "This field is required." in response.content.decode()
    assert _post(client, "alice", "alice-password-1").status_code == 302


def test_it_refuses_sign_in_with_a_form_error_when_redis_is_down(client, alice):
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        response = _post(client, "alice", "alice-password-1")
    assert response.status_code == 503
    page = response.content.decode()
    assert 'role="alert"' in page
    assert "Sign-in is unavailable: the server cannot reach Redis" in page
    assert client.get("/accounts/me/").status_code == 302  # not signed in


ADMIN_LOGIN = "/admin/login/"


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_user("root", password="root-password-1", is_staff=True, is_superuser=True)


def test_the_admin_sign_in_counts_guesses_against_the_same_budget(client, root, settings):
    # The admin's own page was a third, unlimited way to guess the most valuable passwords.
    limit = settings.TL_SIGNIN_LIMIT_PER_ACCOUNT
    guesses = [client.post(ADMIN_LOGIN, {"username": "root", "password": f"guess-{i}"}) for i in range(limit + 2)]
    assert [r.status_code for r in guesses] == [200] * limit + [429] * 2
    assert "Please enter the correct username and password for a staff account" in guesses[0].content.decode()
    refused = client.post(ADMIN_LOGIN, {"username": "root", "password": "root-password-1"})
    assert refused.status_code == 429
    assert "Too many failed sign-ins for the account &#x27;root&#x27;" in refused.content.decode()
    assert 1 <= int(refused["Retry-After"]) <= settings.TL_SIGNIN_WINDOW_SECONDS
    assert client.get("/admin/").status_code == 302  # not signed in
    assert _post(client, "root", "root-password-1").status_code == 429  # one budget for both pages


def test_the_admin_sign_in_still_works_and_fails_closed_without_redis(client, root, alice):
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        down = client.post(ADMIN_LOGIN, {"username": "root", "password": "root-password-1"})
    assert down.status_code == 503 and "Sign-in is unavailable" in down.content.decode()
    # A right password of an account that is not staff is refused, and counted like a wrong one.
    assert client.post(ADMIN_LOGIN, {"username": "alice", "password": "alice-password-1"}).status_code == 200
    assert client.get("/admin/").status_code == 302
    response = client.post(ADMIN_LOGIN, {"username": "root", "password": "root-password-1"})
    assert response.status_code == 302 and client.get("/admin/").status_code == 200
