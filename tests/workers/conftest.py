import pytest

from tests.processes import start_worker, stop_worker


@pytest.fixture
def default_worker():
    process = start_worker("default")
    yield process
    stop_worker(process)
