"""Rate limits shared by every web process, counted in Redis.

DRF's own throttles keep their history in the default cache, which is per process here (locmem):
with several gunicorn workers each would allow the full rate. A fixed window counted with one
INCR per request is atomic across processes; the price is that a client can reach twice the
rate across a window boundary. If Redis cannot be reached the request is let through: rate
limiting is not worth refusing predictions for. (Password sign-in is limited elsewhere, and fails
closed: webapp/core/signin_limits.py.)
"""

import logging
import time

import redis
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from webapp.core.addresses import client_address, rate_limit_identity
from webapp.core.redis import THROTTLE_KEY_PREFIX, shared_redis_client

log = logging.getLogger(__name__)
KEY_PREFIX = THROTTLE_KEY_PREFIX


class RedisWindowThrottle(BaseThrottle):
    """`scope`'s rate from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], e.g. "600/minute"."""

    scope: str = ""

    def __init__(self):
        rate = api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        self.num_requests, self.duration = SimpleRateThrottle.parse_rate(None, rate)
        self._wait = 0.0

    def get_ident(self, request) -> str:
        # Not DRF's: without NUM_PROXIES it keys on X-Forwarded-For, which every client can rewrite.
        return rate_limit_identity(client_address(request))

    def identity(self, request) -> str:
        return f"ip:{self.get_ident(request)}"

    def allow_request(self, request, view) -> bool:
        now = time.time()
        window = int(now // self.duration)
        key = f"{KEY_PREFIX}{self.scope}:{self.identity(request)}:{window}"
        try:
            pipe = shared_redis_client().pipeline()
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
        token_id = getattr(request.auth, "pk", None)
        if token_id:
            return f"token:{token_id}"
        if request.user and request.user.is_authenticated:
            return f"user:{request.user.pk}"
        return super().identity(request)
