"""Health of the parts a user's work depends on: database, broker, storage, workers."""

from django.db import connection
from django.db.utils import DatabaseError

from . import objectstore
from .broker import broker_is_up


def database_is_up() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return False, f"database unreachable: {exc}"
    return True, "ok"


def live_workers(timeout: float = 1.0) -> list[dict] | None:
    """Workers answering a ping within `timeout`; None when the broker could not be asked."""
    from workers.celery import app

    try:
        replies = app.control.ping(timeout=timeout) or []
    except Exception:  # noqa: BLE001 - kombu raises many transport errors; any of them means "unknown"
        return None
    return [{"hostname": name} for reply in replies for name in reply]


def health_report(worker_timeout: float = 1.0) -> dict:
    db_ok, db_detail = database_is_up()
    broker_ok, broker_detail = broker_is_up()
    # The object store, or the local root when there is none (docs/architecture.md, "Object storage").
    storage_ok, storage_detail = objectstore.status()
    workers = live_workers(worker_timeout) if broker_ok else None
    up = db_ok and broker_ok and storage_ok
    return {
        "status": "ok" if up and workers else ("degraded" if up else "down"),
        "database": {"ok": db_ok, "detail": db_detail},
        "broker": {"ok": broker_ok, "detail": broker_detail},
        "storage": {"ok": storage_ok, "detail": storage_detail},
        "workers": {
            "ok": bool(workers),
            "count": len(workers) if workers is not None else None,
            "hostnames": sorted(w["hostname"] for w in workers) if workers else [],
            "detail": "no broker to ask" if workers is None else ("ok" if workers else "no worker answered"),
        },
    }
