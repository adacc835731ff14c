import pytest
from django.test import Client

from tests.brokers import amqp_url, broker  # noqa: F401  (fixtures: worker tests on Redis and RabbitMQ)
from webapp.projects.models import Project


@pytest.fixture
def storage(settings, tmp_path):
    """A private TL_STORAGE_ROOT per test, so that "no files left" can be checked exactly."""
    root = tmp_path / "storage"
    root.mkdir()
    settings.TL_STORAGE_ROOT = root
    return root


@pytest.fixture
def project(alice):
    return Project.objects.create(owner=alice, name="Cats and dogs")


@pytest.fixture
def alice_client(alice):
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(bob):
    client = Client()
    client.force_login(bob)
    return client


@pytest.fixture
def broker_down():
    """Point the Celery app at a port where nothing listens: a real connection refusal."""
    from workers.celery import app

    def reset(url):
        app.conf.broker_url = url
        app._pool = None
        app.amqp._producer_pool = None

    original = app.conf.broker_url
    reset("redis://127.0.0.1:1/0")
    yield
    reset(original)


def record_sent_tasks(monkeypatch, sent: list | None = None) -> list[dict]:
    """Record each published message in `sent` instead of sending it to Redis (the worker tests cover
    the real round trip): its task name, args, task id, and whether a result was asked for."""
    from workers.celery import app

    sent = [] if sent is None else sent

    def send_task(name, args=None, kwargs=None, **options):
        sent.append(
            {
                "name": name,
                "args": args,
                "task_id": options.get("task_id"),
                "ignore_result": options.get("ignore_result"),
            }
        )

    monkeypatch.setattr(app, "send_task", send_task)
    return sent


def files_under(root):
    """Regular files below `root` (the staging parent is created empty on first use)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
