import hashlib
import ipaddress

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from tests.predictions.conftest import api_client
from webapp.accounts.models import ApiToken
from webapp.accounts.services import MAX_TOKENS_PER_USER, api_token_create

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token/"
DEAD_REDIS = "redis://127.0.0.1:1/0"


def _sign_in(client, username, password, **headers):
    return client.post(TOKEN_URL, {"username": username, "password": password}, **headers)


def test_it_gives_a_new_token_for_username_and_password_on_every_call(client, alice):
    first = _sign_in(client, "alice", "alice-password-1")
    assert first.status_code == 200
    again = client.post(TOKEN_URL, {"username": "alice", "password": "alice-password-1"}, "application/json")
    assert again.status_code == 200
    keys = [first.json()["token"], again.json()["token"]]
    assert keys[0] != keys[1]
    for key in keys:  # the older token keeps working
        assert client.get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    assert ApiToken.objects.filter(user=alice).count() == 2


def test_it_stores_only_a_digest_of_each_key(client, alice):
    key = _sign_in(client, "alice", "alice-password-1").json()["token"]
    token = ApiToken.objects.get(user=alice)
    assert token.digest == hashlib.sha256(key.encode()).hexdigest()
    assert token.prefix == key[:8]
    assert not ApiToken.objects.filter(digest=key).exists()


def test_a_copy_of_the_database_holds_nothing_that_authenticates(client, alice):
    key = _sign_in(client, "alice", "alice-password-1").json()["token"]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiToken._meta.db_table}")
        stolen = [str(value) for row in cursor.fetchall() for value in row]
    assert key not in stolen
    for value in stolen:
        response = client.get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Token {value}")
        assert response.status_code == 401, value
    digest = ApiToken.objects.get(user=alice).digest
    response = client.get("/api/v1/projects/", HTTP_AUTHORIZATION=f"Token {digest}")
    assert "is not valid" in response.json()["detail"]


def test_it_keeps_only_the_newest_tokens_of_a_user(alice):
    keys = [api_token_create(user=alice)[1] for _ in range(MAX_TOKENS_PER_USER + 1)]
    assert ApiToken.objects.filter(user=alice).count() == MAX_TOKENS_PER_USER
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {keys[0]}")
    assert client.get("/api/v1/projects/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {keys[1]}")
    assert client.get("/api/v1/projects/").status_code == 200


def test_it_refuses_a_wrong_password(client, alice):
    response = _sign_in(client, "alice", "guess")
    assert response.status_code == 400
    assert response.json()["detail"] == "No active account has this username and password (both are case-sensitive)."
    assert not ApiToken.objects.exists()


def test_it_refuses_an_inactive_user(client, alice):
    alice.is_active = False
    alice.save()
    assert _sign_in(client, "alice", "alice-password-1").status_code == 400


def test_it_names_a_missing_field(client):
    response = client.post(TOKEN_URL, {"username": "alice"})
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "password", "index": None, "message": "This field is required."}]


def test_it_names_a_username_longer_than_any_account_has(client):
    response = _sign_in(client, "a" * 151, "x")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "username"


def test_it_refuses_guesses_at_one_account_past_the_limit_from_any_address(client, alice, settings):
    settings.TL_SIGNIN_LIMIT_PER_ACCOUNT = 10
    statuses = [_sign_in(client, "alice", f"guess-{i}", REMOTE_ADDR=f"198.51.100.{i}").status_code for i in range(12)]
    assert statuses == [400] * 10 + [429] * 2
    refused = _sign_in(client, "alice", "alice-password-1", REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 429  # even the right password: a lock that answers it tells the guesser
    assert "for the account 'alice'" in refused.json()["detail"]
    assert 1 <= int(refused["Retry-After"]) <= settings.TL_SIGNIN_WINDOW_SECONDS
    assert not ApiToken.objects.exists()


def test_rotating_x_forwarded_for_does_not_reset_the_address_limit(client, settings):
    # The break-it reproduction: 60 guesses, each with a new X-Forwarded-For and a new user name.
    statuses = [
        _sign_in(client, f"user{i}", "guess", HTTP_X_FORWARDED_FOR=f"10.{i}.0.1").status_code for i in range(60)
    ]
    limit = settings.TL_SIGNIN_LIMIT_PER_ADDRESS
    assert statuses == [400] * limit + [429] * (60 - limit)
    last = _sign_in(client, "someone", "guess", HTTP_X_FORWARDED_FOR="10.99.0.1")
    assert "from your address (127.0.0.1)" in last.json()["detail"]
    assert int(last["Retry-After"]) >= 1


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget(client, alice, settings):
    settings.TL_TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    settings.TL_SIGNIN_LIMIT_PER_ADDRESS = 3
    attacker = [_sign_in(client, f"u{i}", "guess", HTTP_X_FORWARDED_FOR="192.0.2.66").status_code for i in range(5)]
    assert attacker == [400, 400, 400, 429, 429]
    # A client may prepend anything; the proxy's own entry (the rightmost) is what counts.
    forged = _sign_in(client, "u9", "guess", HTTP_X_FORWARDED_FOR="203.0.113.1, 192.0.2.66")
    assert forged.status_code == 429
    assert _sign_in(client, "alice", "alice-password-1", HTTP_X_FORWARDED_FOR="192.0.2.77").status_code == 200


def test_hammering_one_account_does_not_block_another_account_elsewhere(client, alice, bob, settings):
    settings.TL_SIGNIN_LIMIT_PER_ACCOUNT = 5
    settings.TL_SIGNIN_LIMIT_PER_ADDRESS = 5
    for i in range(20):
        _sign_in(client, "alice", f"guess-{i}", REMOTE_ADDR="198.51.100.7")
    assert _sign_in(client, "alice", "guess", REMOTE_ADDR="198.51.100.7").status_code == 429
    assert _sign_in(client, "bob", "bob-password-1", REMOTE_ADDR="203.0.113.20").status_code == 200


def test_successful_sign_ins_use_no_budget(client, alice, settings):
    settings.TL_SIGNIN_LIMIT_PER_ACCOUNT = 3
    settings.TL_SIGNIN_LIMIT_PER_ADDRESS = 3
    assert all(_sign_in(client, "alice", "alice-password-1").status_code == 200 for _ in range(10))
    assert [_sign_in(client, "alice", "guess").status_code for _ in range(4)] == [400, 400, 400, 429]


def test_it_refuses_sign_in_when_the_attempt_counter_is_unreachable(client, alice):
    with override_settings(REDIS_URL=DEAD_REDIS):
        response = _sign_in(client, "alice", "alice-password-1")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("Sign-in is unavailable: the server cannot reach Redis")
    assert not ApiToken.objects.exists()
    assert _sign_in(client, "alice", "alice-password-1").status_code == 200  # Redis back: sign-in works


def test_rotating_revokes_every_token_and_returns_a_new_one(alice):
    old = api_client(alice)
    other = api_client(alice)
    response = old.post("/api/v1/auth/token/rotate/")
    assert response.status_code == 201
    new_key = response.json()["token"]
    assert old.get("/api/v1/projects/").status_code == 401
    assert other.get("/api/v1/projects/").status_code == 401
    fresh = APIClient()
    fresh.credentials(HTTP_AUTHORIZATION=f"Token {new_key}")
    assert fresh.get("/api/v1/projects/").status_code == 200
    assert ApiToken.objects.filter(user=alice).count() == 1


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Token", "'Token <key>' with one key and no spaces (it has 0 words"),
        ("Token abc def", "'Token <key>' with one key and no spaces (it has 2 words"),
        ("Token sésame".encode().decode("latin-1"), "is not ASCII"),
        ("Token not-a-real-key", "is not valid: it was revoked or mistyped"),
    ],
)
def test_it_says_what_is_wrong_with_a_bad_authorization_header(client, header, message):
    response = client.get("/api/v1/projects/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert message in response.json()["detail"]


def test_it_refuses_the_token_of_an_inactive_user(alice):
    client = api_client(alice)
    alice.is_active = False
    alice.save()
    assert client.get("/api/v1/projects/").status_code == 401


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
