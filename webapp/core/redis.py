"""A Redis client for the app's own reads (health, queue depths), with short timeouts."""

from urllib.parse import urlparse

import redis
from django.conf import settings


def redis_url_for_client(url: str) -> str:
    # Celery/kombu spell a unix socket "redis+socket://"; redis-py spells it "unix://".
    if url.startswith("redis+socket://"):
        parsed = urlparse(url)
        return f"unix://{parsed.path}" + (f"?{parsed.query}" if parsed.query else "")
    return url


def redis_client(timeout: float = 1.0) -> redis.Redis:
    return redis.Redis.from_url(
        redis_url_for_client(settings.REDIS_URL),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry_on_timeout=False,
    )


def broker_is_up(timeout: float = 1.0) -> tuple[bool, str]:
    try:
        redis_client(timeout).ping()
    except (redis.RedisError, OSError) as exc:
        return False, f"broker unreachable: {exc}"
    return True, "ok"
