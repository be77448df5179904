"""Deployments in the catalog: registering replicas, and the embedding model's entry."""

import pytest
from django.core.cache import cache

from tokenmill.catalog import services
from tokenmill.catalog.models import BaseModel, Replica


@pytest.mark.django_db
def test_the_embedding_model_is_in_the_catalog_and_not_fine_tunable():
    model = BaseModel.objects.get(model_id="all-MiniLM-L6-v2")
    assert model.kind == BaseModel.Kind.EMBEDDING
    assert model.context_length == 256
    assert model.supports_fine_tuning is False
    assert BaseModel.objects.get(model_id="tiny-chat").kind == BaseModel.Kind.CHAT


@pytest.mark.django_db(transaction=True)
def test_replica_register_is_an_idempotent_upsert_on_model_and_url():
    first = services.replica_register(model_id="tiny-chat", url="http://127.0.0.1:8100/v1/")
    again = services.replica_register(
        model_id="tiny-chat",
        url="http://127.0.0.1:8100",
        api_key="s3cret",
        weight=3,
        max_concurrent_requests=8,
    )
    assert again.pk == first.pk
    assert Replica.objects.count() == 1
    again.refresh_from_db()
    assert (again.url, again.api_key, again.weight, again.max_concurrent_requests) == (
        "http://127.0.0.1:8100",
        "s3cret",
        3,
        8,
    )
    other = services.replica_register(model_id="tiny-chat", url="http://127.0.0.1:8101")
    assert other.pk != first.pk


@pytest.mark.django_db(transaction=True)
def test_registering_a_replica_clears_the_cached_routes():
    cache.set(services.ROUTES_CACHE_KEY, {"stale": True}, None)
    services.replica_register(model_id="tiny-chat", url="http://127.0.0.1:8100")
    assert cache.get(services.ROUTES_CACHE_KEY) is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "param", "message"),
    [
        ({"model_id": "nope", "url": "http://x:1"}, "model_id", "There is no base model 'nope'"),
        ({"model_id": "tiny-chat", "url": "ftp://x"}, "url", "must start with http://"),
        ({"model_id": "tiny-chat", "url": "http://x:1", "weight": 0}, "weight", "at least 1"),
        (
            {"model_id": "tiny-chat", "url": "http://x:1", "max_concurrent_requests": 0},
            "max_concurrent_requests",
            "at least 1",
        ),
    ],
)
def test_replica_register_refuses_bad_input_by_name(kwargs, param, message):
    with pytest.raises(services.ReplicaError) as raised:
        services.replica_register(**kwargs)
    assert raised.value.param == param
    assert message in raised.value.message
    assert not Replica.objects.exists()
