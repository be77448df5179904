import pytest

from tokenmill.billing import pricing


@pytest.fixture(autouse=True)
def _fresh_prices():
    """Each test sets its own prices: none may be answered from another test's cache."""
    pricing.forget()
    yield
    pricing.forget()
