"""Operators see and edit deployments (replicas of base models) in the console."""

import pytest
from django.core.cache import cache

from tokenmill.catalog.models import BaseModel, Replica
from tokenmill.catalog.services import ROUTES_CACHE_KEY, replica_register


@pytest.mark.django_db(transaction=True)
def test_replicas_are_listed_with_their_health_and_editable(console):
    replica = replica_register(model_id="tiny-chat", url="http://10.0.0.5:8000", weight=2)
    Replica.objects.filter(pk=replica.pk).update(health="unhealthy", last_error="refused")
    listing = console.get("/console/catalog/replica/")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "http://10.0.0.5:8000" in page and "unhealthy" in page

    cache.set(ROUTES_CACHE_KEY, {"stale": True}, None)
    change = console.post(
        f"/console/catalog/replica/{replica.pk}/change/",
        {
            "base_model": replica.base_model_id,
            "url": "http://10.0.0.5:8000",
            "api_key": "",
            "weight": 5,
            "max_concurrent_requests": 16,
            "enabled": "",
        },
    )
    assert change.status_code == 302, change.content.decode()[:2000]
    replica.refresh_from_db()
    assert (replica.weight, replica.max_concurrent_requests, replica.enabled) == (5, 16, False)
    assert cache.get(ROUTES_CACHE_KEY) is None  # gateways pick the change up at once


@pytest.mark.django_db
def test_a_base_models_page_shows_its_replicas_inline(console):
    replica_register(model_id="tiny-chat", url="http://10.0.0.6:8000")
    model = BaseModel.objects.get(model_id="tiny-chat")
    page = console.get(f"/console/catalog/basemodel/{model.pk}/change/")
    assert page.status_code == 200
    assert "http://10.0.0.6:8000" in page.content.decode()
    assert "kind" in page.content.decode()
