"""The two brokers the worker tests run on: Redis (REDIS_URL) and the machine's RabbitMQ.

RabbitMQ is started when it is not running (`rabbitmq-server -detached`). Each test process gets its
own virtual host, so that parallel test processes never take each other's messages.
"""

import os
import socket
import subprocess
import time
from contextlib import contextmanager

import pytest
from django.test import override_settings

from tests.helpers import flush_broker

AMQP_HOST, AMQP_PORT = "127.0.0.1", 5672
QUEUES = ("default", "training", "training-gpu")


def _port_open(host: str = AMQP_HOST, port: int = AMQP_PORT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def ensure_rabbitmq(timeout: float = 90) -> None:
    """Start the machine's RabbitMQ when nothing listens on 5672; fail naming the command otherwise."""
    if _port_open():
        return
    try:
        subprocess.run(["rabbitmq-server", "-detached"], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"RabbitMQ is not running on {AMQP_HOST}:{AMQP_PORT} and `rabbitmq-server -detached` failed: {exc}")
    deadline = time.monotonic() + timeout
    while not _port_open():
        if time.monotonic() > deadline:
            pytest.fail(f"RabbitMQ started with `rabbitmq-server -detached` but did not listen on {AMQP_PORT}")
        time.sleep(0.5)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@contextmanager
def amqp_vhost():
    """A fresh virtual host for this test process (guest may use it); its URL. Deleted afterwards."""
    ensure_rabbitmq()
    vhost = f"tl-test-{os.getpid()}"
    if not _vhost_exists(vhost):
        _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}/{vhost}"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


def _vhost_exists(vhost: str) -> bool:
    out = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, timeout=60).stdout
    return vhost in out.split()


def purge_amqp(url: str, queues=QUEUES) -> None:
    from amqp.exceptions import NotFound
    from kombu import Connection

    with Connection(url, connect_timeout=5) as conn:
        for queue in queues:
            channel = conn.channel()
            try:
                channel.queue_purge(queue)
            except NotFound:
                pass
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: BLE001 - closed by the broker's 404
                    pass


def _reset_celery_connections(app) -> None:
    # The app keeps a connection pool and a producer pool per broker URL, created on first use.
    app._pool = None
    app.amqp._producer_pool = None
    try:
        del app.control.mailbox.producer_pool
    except AttributeError:
        pass


@contextmanager
def using_amqp(url: str):
    """This process publishes, inspects and asks through RabbitMQ at `url` (results stay on Redis)."""
    from workers.celery import app

    options = {"confirm_publish": True}
    before = app.conf.broker_url, app.conf.broker_transport_options
    with override_settings(CELERY_BROKER_URL=url, TL_BROKER="amqp", CELERY_BROKER_TRANSPORT_OPTIONS=options):
        app.conf.broker_url, app.conf.broker_transport_options = url, options
        _reset_celery_connections(app)
        try:
            yield
        finally:
            app.conf.broker_url, app.conf.broker_transport_options = before
            _reset_celery_connections(app)


@contextmanager
def broker_for_test(kind: str, amqp_url: str | None):
    """An empty broker of `kind` for one test; yields the environment a worker subprocess needs."""
    flush_broker()  # Redis holds results (and, for kind "redis", the queues)
    try:
        if kind == "redis":
            yield {}
        else:
            purge_amqp(amqp_url)
            with using_amqp(amqp_url):
                yield {"CELERY_BROKER_URL": amqp_url}
            purge_amqp(amqp_url)
    finally:
        flush_broker()


# Fixtures: a test module imports them (`from tests.brokers import amqp_url, broker`).


@pytest.fixture(scope="session")
def amqp_url():
    with amqp_vhost() as url:
        yield url


@pytest.fixture(params=["redis", "amqp"])
def broker(request):
    """Runs the test once per broker: yields (kind, the environment its worker subprocesses need)."""
    url = request.getfixturevalue("amqp_url") if request.param == "amqp" else None
    with broker_for_test(request.param, url) as env:
        yield request.param, env
