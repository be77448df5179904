"""GET /api/v1/usage: exact ledger sums by bucket, model, key and kind."""

from datetime import UTC, datetime

import pytest

from tokenmill.metering.models import LedgerEntry


def _entry(tenant, *, hour, model="tiny-chat", key="key-a", kind="chat", n=1, p=10, c=4):
    return LedgerEntry.unscoped.create(
        tenant=tenant,
        key_public_id=key,
        model=model,
        base_model="tiny-chat",
        kind=kind,
        hour=hour,
        requests=n,
        prompt_tokens=p,
        completion_tokens=c,
    )


@pytest.fixture
def ledger_rows(acme, globex):
    _entry(acme, hour=datetime(2026, 11, 3, 9, tzinfo=UTC), n=2, p=20, c=8)
    _entry(acme, hour=datetime(2026, 11, 3, 17, tzinfo=UTC), key="key-b", n=1, p=5, c=1)
    _entry(
        acme,
        hour=datetime(2026, 11, 4, 0, tzinfo=UTC),
        model="ft:tiny-chat:acme::x",
        n=3,
        p=33,
        c=9,
    )
    _entry(
        acme, hour=datetime(2026, 11, 4, 8, tzinfo=UTC), kind="training", key="", n=1, p=1000, c=0
    )
    _entry(acme, hour=datetime(2026, 11, 9, 8, tzinfo=UTC), n=50, p=500, c=50)  # outside
    _entry(globex, hour=datetime(2026, 11, 3, 9, tzinfo=UTC), n=7, p=70, c=7)  # another tenant


def test_usage_by_day_has_exact_sums_and_totals(alice_api, ledger_rows):
    body = alice_api.get("/api/v1/usage?start=2026-11-03&end=2026-11-04").json()
    assert body["object"] == "usage" and body["bucket"] == "day"
    assert body["totals"] == {
        "requests": 7,
        "prompt_tokens": 1058,
        "completion_tokens": 18,
        "total_tokens": 1076,
    }
    days = [(row["start_time"], row["requests"], row["total_tokens"]) for row in body["data"]]
    assert days == [
        (int(datetime(2026, 11, 3, tzinfo=UTC).timestamp()), 3, 34),
        (int(datetime(2026, 11, 4, tzinfo=UTC).timestamp()), 4, 1042),
    ]


def test_usage_grouped_by_model_key_and_kind_per_hour(alice_api, ledger_rows):
    body = alice_api.get(
        "/api/v1/usage?start=2026-11-04&end=2026-11-04&bucket=hour&group_by=model,kind,key"
    ).json()
    rows = [(row["model"], row["kind"], row["key"], row["prompt_tokens"]) for row in body["data"]]
    assert rows == [
        ("ft:tiny-chat:acme::x", "chat", "key-a", 33),
        ("tiny-chat", "training", "", 1000),
    ]
    assert body["totals"]["requests"] == 4


@pytest.mark.parametrize(
    ("query", "param", "message"),
    [
        ("start=yesterday", "start", "start must be a date such as 2026-12-01, got 'yesterday'."),
        ("start=2026-11-05&end=2026-11-01", "start", "start must not be after end."),
        ("bucket=week", "bucket", "bucket must be one of day, hour, got 'week'."),
        (
            "group_by=model,colour",
            "group_by",
            "group_by takes model, key, kind; 'colour' is not one of them.",
        ),
        ("start=2024-01-01&end=2026-01-01", "start", "The range may span at most 366 days."),
    ],
)
def test_bad_usage_queries_say_what_is_wrong(alice_api, acme, query, param, message):
    response = alice_api.get(f"/api/v1/usage?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": message,
        "type": "invalid_request_error",
        "param": param,
        "code": "invalid_value",
    }


def test_usage_needs_the_organization_scope(api, acme, bob_key):
    response = api(bob_key).get("/api/v1/usage")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"
