"""The sign-in attempt counters against the real Redis of the test run."""

import time

import pytest
from django.test import override_settings

from webapp.core.redis import redis_client
from webapp.core.signin_limits import (
    KEY_PREFIX,
    SigninThrottled,
    SigninUnavailable,
    _account_key,
    signin_attempt_start,
)


@pytest.fixture(autouse=True)
def fresh_counters(settings):
    settings.TL_SIGNIN_LIMIT_PER_ACCOUNT = 3
    settings.TL_SIGNIN_LIMIT_PER_ADDRESS = 5
    settings.TL_SIGNIN_WINDOW_SECONDS = 60
    client = redis_client(timeout=2)
    keys = list(client.scan_iter(f"{KEY_PREFIX}*"))
    if keys:
        client.delete(*keys)
    yield


def _fail(n: int, *, username="alice", address="198.51.100.1") -> None:
    for _ in range(n):
        signin_attempt_start(username=username, address=address)


def test_it_refuses_past_the_account_limit_naming_the_account():
    _fail(3)
    with pytest.raises(SigninThrottled) as refused:
        signin_attempt_start(username="alice", address="203.0.113.5")
    assert "for the account 'alice': more than 3 in 60 seconds" in refused.value.message
    assert 1 <= refused.value.retry_after <= 60


def test_the_account_budget_ignores_case_and_unicode_forms():
    _fail(1, username="Alice")
    _fail(1, username="ALICE")
    _fail(1, username="ａｌｉｃｅ")  # fullwidth letters: NFKC makes them "alice"
    with pytest.raises(SigninThrottled):
        signin_attempt_start(username="alice", address="203.0.113.5")


def test_it_refuses_past_the_address_limit_naming_the_address():
    for i in range(5):
        signin_attempt_start(username=f"user{i}", address="198.51.100.1")
    with pytest.raises(SigninThrottled) as refused:
        signin_attempt_start(username="someone-else", address="198.51.100.1")
    assert "from your address (198.51.100.1)" in refused.value.message


def test_one_ipv6_host_cannot_escape_the_limit_by_changing_addresses_in_its_64():
    for i in range(5):
        signin_attempt_start(username=f"user{i}", address=f"2001:db8::{i + 1}")
    with pytest.raises(SigninThrottled):
        signin_attempt_start(username="user9", address="2001:db8::ffff")


def test_a_success_gives_its_attempt_back():
    for _ in range(10):
        signin_attempt_start(username="alice", address="198.51.100.1").succeeded()
    _fail(3)
    with pytest.raises(SigninThrottled):
        signin_attempt_start(username="alice", address="198.51.100.1")


def test_the_counter_of_a_user_is_not_named_after_them():
    _fail(1, username="alice")
    keys = [key.decode() for key in redis_client(timeout=2).scan_iter(f"{KEY_PREFIX}*")]
    assert _account_key("alice") in keys
    assert not any("alice" in key for key in keys)


def test_the_window_ends_and_a_late_refund_does_not_leave_a_negative_counter(settings):
    settings.TL_SIGNIN_WINDOW_SECONDS = 1
    attempt = signin_attempt_start(username="alice", address="198.51.100.1")
    _fail(2)
    with pytest.raises(SigninThrottled):
        signin_attempt_start(username="alice", address="198.51.100.1")
    time.sleep(2.1)
    attempt.succeeded()  # its window is over: nothing to give back
    assert redis_client(timeout=2).get(_account_key("alice")) is None
    signin_attempt_start(username="alice", address="198.51.100.1")  # a new window, a new budget


def test_it_fails_closed_when_redis_cannot_be_reached():
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        with pytest.raises(SigninUnavailable) as refused:
            signin_attempt_start(username="alice", address="198.51.100.1")
    assert refused.value.status_code == 503
    assert "cannot reach Redis" in refused.value.message


def test_a_refund_that_cannot_reach_redis_does_not_undo_the_sign_in(caplog):
    attempt = signin_attempt_start(username="alice", address="198.51.100.1")
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        attempt.succeeded()
    assert "could not give back an attempt" in caplog.text
    assert int(redis_client(timeout=2).get(_account_key("alice"))) == 1  # counted until the window ends
