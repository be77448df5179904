import pytest
from django.test import Client

from tenants.models import User
from tests.factories import PASSWORD


@pytest.fixture
def operator(db) -> User:
    return User.objects.create_superuser("ops@tokenmill.example", PASSWORD)


@pytest.fixture
def console(operator) -> Client:
    """A browser session of a staff superuser on the operator console."""
    client = Client()
    client.force_login(operator)
    return client
