"""Questions to the Celery broker, whichever it is (Redis or RabbitMQ), each with a short timeout.

A Redis broker is always REDIS_URL's Redis (settings refuse another), so its reads use that client.

Redis lets us read every waiting message; RabbitMQ only says how many wait in a queue and how many
consumers it has (a passive declare), so what can be concluded differs: see `lost_task_ids`
(docs/decisions.md, "RabbitMQ as the broker").
"""

from collections.abc import Iterable

import redis
from django.conf import settings

from .redact import without_server_paths
from .redis import kombu_queue_keys, redis_client

# Control replies that say what a worker holds: running, prefetched, and waiting for an ETA (a retry's countdown).
_HELD = ("active", "reserved", "scheduled")


def broker_name() -> str:
    """ "Redis" or "RabbitMQ", for messages a user reads."""
    return "RabbitMQ" if settings.TL_BROKER == "amqp" else "Redis"


def _amqp_connection(timeout: float):
    from kombu import Connection

    return Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout, transport_options={"read_timeout": timeout})


def broker_is_up(timeout: float = 1.0) -> tuple[bool, str]:
    """(True, "ok") when the broker answers within `timeout`, else (False, the reason without server paths)."""
    try:
        if settings.TL_BROKER == "amqp":
            with _amqp_connection(timeout) as conn:
                conn.ensure_connection(max_retries=1, timeout=timeout)
        else:
            redis_client(timeout).ping()
    except Exception as exc:  # noqa: BLE001 - redis, socket and kombu errors all mean "unreachable"
        return False, f"broker unreachable ({broker_name()}): {without_server_paths(str(exc))}"
    return True, "ok"


def queue_stats(queues: Iterable[str], timeout: float = 1.0) -> dict[str, dict] | None:
    """{queue: {"messages": waiting, "consumers": n or None}} for each queue; None if the broker cannot be asked.

    Messages delivered to a worker and not yet acked are not counted. Redis cannot say who
    consumes a queue ("consumers": None); RabbitMQ can. A queue RabbitMQ does not know yet holds nothing.
    """
    queues = list(queues)
    if settings.TL_BROKER == "amqp":
        return _amqp_queue_stats(queues, timeout)
    try:
        pipe = redis_client(timeout).pipeline(transaction=False)
        for queue in queues:
            for key in kombu_queue_keys(queue):
                pipe.llen(key)
        lengths = pipe.execute()
    except (redis.RedisError, OSError):
        return None
    per_queue = len(lengths) // len(queues) if queues else 0
    return {
        queue: {"messages": sum(lengths[i * per_queue : (i + 1) * per_queue]), "consumers": None}
        for i, queue in enumerate(queues)
    }


def _amqp_queue_stats(queues: list[str], timeout: float) -> dict[str, dict] | None:
    from amqp.exceptions import NotFound

    stats = {}
    try:
        with _amqp_connection(timeout) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            for queue in queues:
                # A passive declare of an unknown queue closes its channel: one channel per question.
                channel = conn.channel()
                try:
                    _, messages, consumers = channel.queue_declare(queue=queue, passive=True)
                except NotFound:
                    messages, consumers = 0, 0
                finally:
                    try:
                        channel.close()
                    except Exception:  # noqa: BLE001 - already closed by the broker's 404
                        pass
                stats[queue] = {"messages": messages, "consumers": consumers}
    except Exception:  # noqa: BLE001 - any transport error: the broker could not be asked
        return None
    return stats


def _held_by_workers(timeout: float) -> set[str] | None:
    """Ids of the tasks some worker runs, has prefetched or holds for its ETA; None if no worker answered."""
    from workers.celery import app

    held: set[str] = set()
    try:
        inspect = app.control.inspect(timeout=timeout)
        for question in _HELD:
            replies = getattr(inspect, question)()
            if not replies:
                return None
            for tasks in replies.values():
                for task in tasks or []:
                    request = task.get("request", task)  # `scheduled` wraps each task in its ETA entry
                    if request.get("id"):
                        held.add(request["id"])
    except Exception:  # noqa: BLE001 - a transport error means we could not ask
        return None
    return held


def lost_task_ids(queues: Iterable[str], task_ids: Iterable[str], timeout: float = 2.0) -> set[str] | None:
    """Which of `task_ids` have no message in `queues` and none held by a worker; None when that is unknown.

    Redis: every waiting and every unacked message is read (kombu keeps the latter in a hash). RabbitMQ
    cannot show a queue's contents, so a message counts as lost only when the queues hold no message
    at all and either nobody consumes them (RabbitMQ gives an unacked message back when its
    consumer goes) or the workers, asked, hold none of the ids. Behind a backlog nothing is concluded
    until it drains: a late re-send is better than a duplicate's wasted delivery.
    """
    from .redis import broker_task_ids

    queues, task_ids = list(queues), {str(task_id) for task_id in task_ids}
    if settings.TL_BROKER != "amqp":
        present = broker_task_ids(queues, timeout=timeout)
        return None if present is None else task_ids - present
    stats = queue_stats(queues, timeout=timeout)
    if stats is None or any(s["messages"] for s in stats.values()):
        return None
    if not any(s["consumers"] for s in stats.values()):
        return task_ids
    held = _held_by_workers(timeout)
    return None if held is None else task_ids - held
