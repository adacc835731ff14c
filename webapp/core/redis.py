"""A Redis client for the app's own reads (health, queue depths), with short timeouts.

Broker questions that must work on RabbitMQ as well go through webapp/core/broker.py."""

import json
import threading
from urllib.parse import urlparse

import redis
from django.conf import settings

# kombu's Redis transport (kombu.transport.redis.Channel): a message sent with priority p > 0 lands
# in "<queue><sep><step>"; delivered-but-unacked messages wait in the "unacked" hash until acked.
KOMBU_PRIORITY_STEPS = [0, 3, 6, 9]
KOMBU_SEP = "\x06\x16"
# Every rate-limit counter (API throttles, sign-in limits) is a key under this prefix.
THROTTLE_KEY_PREFIX = "tl:throttle:"


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


_shared_clients: dict[tuple[str, float], redis.Redis] = {}
_shared_clients_lock = threading.Lock()


def shared_redis_client(timeout: float = 0.5) -> redis.Redis:
    """A client reused by every request of this process (one pool per URL and timeout): a new client per
    request would open a connection per request."""
    key = (settings.REDIS_URL, timeout)
    with _shared_clients_lock:
        client = _shared_clients.get(key)
        if client is None:
            client = _shared_clients[key] = redis_client(timeout)
        return client


def kombu_queue_keys(queue: str) -> list[str]:
    """The Redis lists that hold `queue`'s waiting messages, one per priority step."""
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}
    prefix = options.get("global_keyprefix", "")
    sep = options.get("sep", KOMBU_SEP)
    steps = options.get("priority_steps", KOMBU_PRIORITY_STEPS)
    return [prefix + (f"{queue}{sep}{step}" if step else queue) for step in steps]


def _task_id(raw) -> str | None:
    try:
        message = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if isinstance(message, list):  # an "unacked" entry is [message, exchange, routing_key]
        message = message[0] if message else {}
    headers = message.get("headers") or {} if isinstance(message, dict) else {}
    return headers.get("id")


def broker_task_ids(queues, timeout: float = 2.0) -> set[str] | None:
    """Ids of the tasks whose message waits in `queues` or is delivered but unacked; None if Redis
    cannot be read (then nothing can be concluded about a missing message)."""
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}
    unacked_key = options.get("global_keyprefix", "") + options.get("unacked_key", "unacked")
    try:
        client = redis_client(timeout)
        raws = [raw for queue in queues for key in kombu_queue_keys(queue) for raw in client.lrange(key, 0, -1)]
        raws += client.hvals(unacked_key)
    except (redis.RedisError, OSError):
        return None
    return {task_id for task_id in map(_task_id, raws) if task_id}
