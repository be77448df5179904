import openai
import pytest

from tokenmill.catalog.models import BaseModel


@pytest.fixture
def tiny_chat(transactional_db) -> BaseModel:
    """The demo base model; tests/conftest.py seeds it again after each transactional flush."""
    return BaseModel.objects.get(model_id="tiny-chat")


@pytest.fixture
def sdk(live_server, tiny_chat):
    """`sdk(key)` gives the official OpenAI client pointed at a live Tokenmill server."""
    clients: list[openai.OpenAI] = []

    def client(key: str) -> openai.OpenAI:
        clients.append(openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=key, max_retries=0))
        return clients[-1]

    yield client
    for opened in clients:  # an open keep-alive connection is a ResourceWarning, an error here
        opened.close()
