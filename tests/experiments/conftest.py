import pytest

from tests.brokers import amqp_url, broker  # noqa: F401  (fixtures: worker tests on Redis and RabbitMQ)


@pytest.fixture(autouse=True)
def private_storage(settings, tmp_path):
    """A storage root per test (worker subprocesses inherit it), so leftover files are this test's."""
    settings.TL_STORAGE_ROOT = tmp_path / "storage"
    return settings.TL_STORAGE_ROOT
