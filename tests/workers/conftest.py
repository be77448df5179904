import pytest

from tests.processes import start_worker, stop_worker
from workers.celery import app


@pytest.fixture
def default_worker():
    # Earlier tests leave tasks on the shared broker (validations of files in databases
    # that are gone): this worker starts on an empty queue, so the test measures its own task.
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("default")
    process = start_worker("default")
    yield process
    stop_worker(process)
