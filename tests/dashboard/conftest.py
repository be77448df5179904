"""Logged-in browsers (Django test clients) for the people of tests/conftest.py."""

import importlib

import pytest
from django.apps import apps
from django.test import Client

from tenants.models import Role
from tests.factories import MembershipFactory, UserFactory


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 costs ~0.3 s a password on CI machines and every fixture user has one;
    # what is under test here is the pages, not the hasher.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def tiny_chat(db) -> None:
    """The demo base model, seeded as its migration seeds it.

    A transactional test (the browser and SDK tests) empties every table when it ends,
    and a reused test database keeps it that way: do not count on the migration's rows.
    """
    migration = importlib.import_module("tokenmill.catalog.migrations.0001_initial")
    migration.seed_demo_model(apps, None)


@pytest.fixture
def login():
    """`login(user)` gives a client logged in as that user."""
    return client_for


@pytest.fixture
def dave(acme, alice):
    """A viewer of acme."""
    user = UserFactory(email="dave@example.com", first_name="Dave")
    MembershipFactory(tenant=acme, user=user, role=Role.VIEWER)
    return user


@pytest.fixture
def alice_client(alice) -> Client:
    return client_for(alice)


@pytest.fixture
def bob_client(bob) -> Client:
    return client_for(bob)


@pytest.fixture
def charlie_client(charlie) -> Client:
    return client_for(charlie)


@pytest.fixture
def dave_client(dave) -> Client:
    return client_for(dave)
