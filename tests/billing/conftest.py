import pytest

from tokenmill.billing import pricing


@pytest.fixture(autouse=True)
def _fresh_prices():
    """Each test sets its own prices: none may be answered from another test's cache."""
    pricing.forget()
    yield
    pricing.forget()


@pytest.fixture
def fake_stripe(settings, monkeypatch):
    """Stripe configured, pointed at a local recording server; backoff sleeps recorded."""
    from tests.billing import fake_stripe as fake_module
    from tokenmill.billing import sync

    fake, server = fake_module.start()
    settings.STRIPE_SECRET_KEY = "sk_test_tokenmill"
    settings.STRIPE_API_BASE = fake.url
    settings.STRIPE_METERED_PRICES = ["price_input", "price_output", "price_training"]
    fake.sleeps = []
    monkeypatch.setattr(sync, "sleep", fake.sleeps.append)
    yield fake
    server.shutdown()
    server.server_close()
