"""Rate limits shared by every web process, counted in Redis.

DRF's own throttles keep their history in the default cache, which is per process here (locmem):
with several gunicorn workers each would allow the full rate. A fixed window counted with one
INCR per request is atomic across processes; the price is that a client can reach twice the
rate across a window boundary. If Redis cannot be reached the request is let through: rate
limiting is not worth refusing predictions for.
"""

import hashlib
import logging
import threading
import time

import redis
from django.conf import settings
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from webapp.core.redis import redis_client

log = logging.getLogger(__name__)
KEY_PREFIX = "tl:throttle:"

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _redis() -> redis.Redis:
    # One pool per URL and process: a new client per request would open a connection per request.
    with _clients_lock:
        client = _clients.get(settings.REDIS_URL)
        if client is None:
            client = _clients[settings.REDIS_URL] = redis_client(timeout=0.5)
        return client


class RedisWindowThrottle(BaseThrottle):
    """`scope`'s rate from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], e.g. "600/minute"."""

    scope: str = ""

    def __init__(self):
        rate = api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        self.num_requests, self.duration = SimpleRateThrottle.parse_rate(None, rate)
        self._wait = 0.0

    def identity(self, request) -> str:
        return f"ip:{self.get_ident(request)}"

    def allow_request(self, request, view) -> bool:
        now = time.time()
        window = int(now // self.duration)
        key = f"{KEY_PREFIX}{self.scope}:{self.identity(request)}:{window}"
        try:
            pipe = _redis().pipeline()
            pipe.incr(key)
            pipe.expire(key, self.duration + 1)
            count, _ = pipe.execute()
        except (redis.RedisError, OSError) as exc:
            log.warning("throttle %s: Redis unreachable (%s); request allowed", self.scope, exc)
            return True
        if count <= self.num_requests:
            return True
        self._wait = (window + 1) * self.duration - now
        return False

    def wait(self) -> float:
        return max(1.0, self._wait)


class PredictRateThrottle(RedisWindowThrottle):
    """Per API token (a user's browser session counts as one more token)."""

    scope = "predict"

    def identity(self, request) -> str:
        key = getattr(request.auth, "key", None)
        if key:
            # The counter's name must not reveal the token.
            return "token:" + hashlib.sha256(key.encode()).hexdigest()[:24]
        if request.user and request.user.is_authenticated:
            return f"user:{request.user.pk}"
        return super().identity(request)


class AuthRateThrottle(RedisWindowThrottle):
    """Password attempts on POST /api/v1/auth/token/, per client address."""

    scope = "auth"
