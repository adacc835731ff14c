"""Limits on password sign-in (the login page and POST /api/v1/auth/token/), counted in Redis.

Every attempt counts against two budgets: the account it names (from any address) and the client
address it comes from (for any account), TL_SIGNIN_LIMIT_PER_ACCOUNT and TL_SIGNIN_LIMIT_PER_ADDRESS
within TL_SIGNIN_WINDOW_SECONDS. An attempt is counted before the password is checked, so parallel
guesses cannot all slip under the limit, and given back when it succeeds, so only failures use a
budget. A counter's window starts with its first attempt and Redis drops it when the window ends.

Counters live in Redis so that every web process shares them. If Redis cannot be reached, sign-in is
refused (fail closed): someone who can make Redis unreachable must not gain unlimited guesses.
"""

import hashlib
import logging
import unicodedata
from dataclasses import dataclass

import redis
from django.conf import settings

from .addresses import rate_limit_identity
from .errors import ServiceError, Unavailable
from .redis import THROTTLE_KEY_PREFIX, shared_redis_client

log = logging.getLogger(__name__)
KEY_PREFIX = f"{THROTTLE_KEY_PREFIX}signin:"

# Give one attempt back, unless its window has ended meanwhile (a DECR then would create a counter
# at -1 that never expires).
_REFUND = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
return 0
"""


class SigninThrottled(ServiceError):
    """Too many failed sign-ins for an account or from an address; `retry_after` in seconds."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class SigninUnavailable(Unavailable):
    """The attempt counters cannot be read, so no password is checked."""


@dataclass(frozen=True)
class SigninAttempt:
    keys: tuple[str, ...]

    def succeeded(self) -> None:
        """Give the attempt back: a successful sign-in uses neither budget."""
        try:
            client = shared_redis_client()
            for key in self.keys:
                client.eval(_REFUND, 1, key)
        except (redis.RedisError, OSError) as exc:
            # The user is signed in already; the attempt stays counted until its window ends.
            log.warning("sign-in limits: could not give back an attempt (%s)", exc)


def _account_key(username: str) -> str:
    # "Alice" and "alice" share one budget; the key holds a digest so Redis never lists user names.
    normalised = unicodedata.normalize("NFKC", username).casefold()
    return f"{KEY_PREFIX}account:{hashlib.sha256(normalised.encode()).hexdigest()[:32]}"


def _address_key(address: str) -> str:
    return f"{KEY_PREFIX}address:{rate_limit_identity(address)}"


def _in_words(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{-(-seconds // 60)} minutes"


def signin_attempt_start(*, username: str, address: str) -> SigninAttempt:
    """Count one sign-in attempt for `username` from `address` before its password is checked.

    Raises SigninThrottled when either budget is spent and SigninUnavailable when Redis cannot be
    reached; call `.succeeded()` on the result once the password was right.
    """
    window = settings.TL_SIGNIN_WINDOW_SECONDS
    budgets = [
        (_account_key(username), settings.TL_SIGNIN_LIMIT_PER_ACCOUNT, f"for the account {username!r}"),
        (_address_key(address), settings.TL_SIGNIN_LIMIT_PER_ADDRESS, f"from your address ({address})"),
    ]
    try:
        pipe = shared_redis_client().pipeline(transaction=True)
        for key, _, _ in budgets:
            pipe.set(key, 0, ex=window, nx=True)
            pipe.incr(key)
            pipe.ttl(key)
        replies = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.error("sign-in refused: the attempt counters in Redis cannot be reached (%s)", exc)
        raise SigninUnavailable(
            "Sign-in is unavailable: the server cannot reach Redis, where it counts sign-in attempts. "
            "Try again in a minute; if it persists, tell the administrator."
        ) from exc
    spent = []
    for i, (_, limit, whose) in enumerate(budgets):
        count, ttl = replies[3 * i + 1], replies[3 * i + 2]
        if count > limit:
            spent.append((max(1, ttl if ttl > 0 else window), whose, limit))
    if spent:
        retry_after, whose, limit = max(spent)
        raise SigninThrottled(
            f"Too many failed sign-ins {whose}: more than {limit} in {_in_words(window)}. "
            f"Try again in {_in_words(retry_after)}.",
            retry_after=retry_after,
        )
    return SigninAttempt(keys=tuple(key for key, _, _ in budgets))
