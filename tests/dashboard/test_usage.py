"""The usage page: the same figures as /api/v1/usage for the same range, every day of the
range (zero when unused), the range picker's errors, the empty state, another
organization's usage out of sight, and the limits with what is left this minute."""

import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest

from tenants.models import ApiKey
from tests.factories import make_key
from tests.metering.test_usage_api import _entry
from tokenmill.metering.models import LedgerEntry
from tokenmill.metering.ranges import today

URL = "/usage/"
COUNTS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens")


def entry(tenant, **kwargs) -> LedgerEntry:
    """A ledger row; made without an API key unless `key` names one."""
    return _entry(tenant, **{"key": "", **kwargs})


def at(day: int, hour: int = 9) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


@pytest.fixture
def ledger(acme, alice, globex):
    """Acme's usage over a week of November: two keys, the playground, a fine-tune, training."""
    production = ApiKey.objects.for_tenant(acme).get(
        prefix=make_key(acme, alice, name="production")[:12]
    )
    nightly = ApiKey.objects.for_tenant(acme).get(prefix=make_key(acme, alice, name="nightly")[:12])
    entry(acme, hour=at(3, 9), key=production.public_id, n=2, p=20, c=8)
    entry(acme, hour=at(3, 17), key=nightly.public_id, n=1, p=5, c=1)
    entry(acme, hour=at(3, 17), key=production.public_id, n=4, p=400, c=120)
    entry(acme, hour=at(4, 0), key=production.public_id, model="ft:tiny-chat:acme::x", n=3, p=33)
    entry(acme, hour=at(4, 8), kind="training", n=1, p=1000, c=0)
    entry(acme, hour=at(6, 23), model="all-MiniLM-L6-v2", kind="embedding", n=5, p=55, c=0)
    entry(acme, hour=at(9, 8), key=production.public_id, n=50, p=500, c=50)  # after the range
    entry(acme, hour=at(2, 23), key=production.public_id, n=9, p=90, c=9)  # before it
    entry(globex, hour=at(3, 9), model="globex-secret-model", n=7, p=70, c=7)
    return {"production": production, "nightly": nightly}


def _sum_by(rows: list[dict], name: str) -> dict[str, dict[str, int]]:
    sums = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    for row in rows:
        for count in COUNTS:
            sums[row[name]][count] += row[count]
    return dict(sums)


def test_the_page_shows_exactly_what_the_api_answers_for_the_same_range(
    alice_client, alice_api, ledger
):
    query = "start=2026-11-03&end=2026-11-07"
    page = alice_client.get(f"{URL}?{query}")
    api_daily = alice_api.get(f"/api/v1/usage?{query}").json()
    api_models = alice_api.get(f"/api/v1/usage?{query}&group_by=model").json()
    api_keys = alice_api.get(f"/api/v1/usage?{query}&group_by=key").json()

    assert page.status_code == 200
    report = page.context["report"]
    assert report["totals"] == api_daily["totals"] == api_models["totals"] == api_keys["totals"]
    assert report["totals"] == {
        "requests": 16,
        "prompt_tokens": 1513,
        "completion_tokens": 133,
        "total_tokens": 1646,
    }
    used_days = {
        int(datetime.combine(day, datetime.min.time(), UTC).timestamp()): row
        for day, row in report["days"]
        if row["requests"]
    }
    assert used_days == {
        row["start_time"]: {count: row[count] for count in COUNTS} for row in api_daily["data"]
    }
    assert dict(report["models"]) == _sum_by(api_models["data"], "model")
    assert dict(report["keys"]) == _sum_by(api_keys["data"], "key")
    # The page prints them.
    html = page.content.decode()
    for count, value in report["totals"].items():
        assert f'data-total="{count}">{value:,}<' in html
    keys_table = html.split('data-usage-table="keys"')[1].split("</table>")[0]
    production = ledger["production"]
    assert production.name in keys_table and f"…{production.last_four}" in keys_table
    assert "No API key" in keys_table  # the training job and the embeddings had none


def test_every_day_of_the_range_is_drawn_days_without_usage_as_zero(alice_client, ledger):
    page = alice_client.get(f"{URL}?start=2026-11-01&end=2026-11-07")

    days = page.context["report"]["days"]
    assert [day for day, _ in days] == [date(2026, 11, d) for d in range(1, 8)]
    assert [row["requests"] for _, row in days] == [0, 9, 7, 4, 0, 5, 0]
    assert [row["total_tokens"] for _, row in days] == [0, 99, 554, 1037, 0, 55, 0]
    tokens_chart = page.context["tokens_chart"]
    assert len(tokens_chart.bars) == 7
    assert [bar.value for bar in tokens_chart.bars] == ["0", "99", "554", "1,037", "0", "55", "0"]
    assert tokens_chart.bars[0].segments == ()
    assert [s.key for s in tokens_chart.bars[2].segments] == ["prompt", "completion"]
    assert tokens_chart.bars[2].title == (
        "Nov 3: 554 tokens (425 prompt tokens, 129 completion tokens)"
    )
    requests_chart = page.context["requests_chart"]
    assert [bar.value for bar in requests_chart.bars] == ["0", "9", "7", "4", "0", "5", "0"]
    html = page.content.decode()
    # Two charts of seven days, each drawn wide and narrow (for phones).
    assert html.count('<g class="bar" data-bar=') == 28
    narrow = page.context["tokens_chart_narrow"]
    assert (narrow.width, len(narrow.bars), len(narrow.x_ticks)) == (400, 7, 4)
    assert [bar.value for bar in narrow.bars] == [bar.value for bar in tokens_chart.bars]
    assert '<title id="tokens-chart-title">Tokens by day</title>' in html
    assert ">Day (UTC)</text>" in html and ">Requests</text>" in html
    assert 'data-day="2026-11-05"' in html  # the table of figures lists the empty day too


def test_the_tallest_bar_reaches_the_top_of_a_round_axis(alice_client, ledger):
    chart = alice_client.get(f"{URL}?start=2026-11-03&end=2026-11-04").context["tokens_chart"]
    labels = [tick.label for tick in chart.y_ticks]
    assert labels == ["0", "500", "1,000", "1,500"]
    tallest = min(bar.top for bar in chart.bars)
    assert chart.top <= tallest < chart.bottom


def test_without_dates_the_page_shows_the_last_30_days_as_the_api_does(
    alice_client, alice_api, acme
):
    entry(acme, hour=datetime.now(UTC).replace(minute=0, second=0, microsecond=0), n=3, p=30)
    page = alice_client.get(URL)

    span = page.context["span"]
    assert (span.start, span.end) == (today() - timedelta(days=29), today())
    assert len(page.context["report"]["days"]) == 30
    assert page.context["report"]["totals"] == alice_api.get("/api/v1/usage").json()["totals"]
    html = page.content.decode()
    assert f'value="{today():%Y-%m-%d}"' in html  # the picker shows the range it applied
    # The preset for this range is marked as the current one (so is "This month" on the
    # last day of a 30-day month, when it is the same range).
    current = re.findall(r'<a class="btn btn-secondary btn-sm" href="([^"]+)" aria-current', html)
    assert f"?start={span.start:%Y-%m-%d}&amp;end={span.end:%Y-%m-%d}" in current
    assert "?start={0:%Y-%m-%d}&amp;end={0:%Y-%m-%d}".format(today()) not in current


def test_the_presets_cover_today_the_last_7_and_30_days_and_this_month(alice_client, acme):
    presets = {label: span for label, span, _ in alice_client.get(URL).context["presets"]}
    now = today()
    assert presets["Today"].start == presets["Today"].end == now
    assert (presets["Last 7 days"].start, presets["Last 7 days"].end) == (
        now - timedelta(days=6),
        now,
    )
    assert presets["Last 30 days"].start == now - timedelta(days=29)
    assert (presets["This month"].start, presets["This month"].end) == (now.replace(day=1), now)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("start=yesterday", "Enter a date such as 2026-12-01."),
        ("start=2026-11-01&end=2026-13-01", "Enter a date such as 2026-12-01."),
        ("start=2026-11-05&end=2026-11-01", "The start date must not be after the end date."),
        ("start=2024-01-01&end=2026-01-01", "The range may span at most 366 days."),
        ("start=2025-11-01&end=2026-11-02", "The range may span at most 366 days."),
    ],
)
def test_a_bad_range_is_a_form_error_not_a_crash(alice_client, ledger, query, message):
    response = alice_client.get(f"{URL}?{query}")

    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert "data-range-error" in html
    assert "report" not in response.context
    assert "Rate limits this minute" in html  # the rest of the page still works


def test_a_range_of_366_days_is_allowed(alice_client, ledger):
    response = alice_client.get(f"{URL}?start=2025-12-01&end=2026-12-01")
    assert response.status_code == 200
    assert len(response.context["report"]["days"]) == 366


def test_an_organization_without_usage_is_told_how_to_make_its_first_call(alice_client, acme):
    html = alice_client.get(URL).content.decode()

    assert "No usage yet" in html
    assert "/v1/chat/completions" in html and "Authorization: Bearer $TOKENMILL_API_KEY" in html
    assert 'href="/api-keys/"' in html
    assert "data-usage-totals" not in html


def test_a_viewer_may_look(dave_client, ledger):
    response = dave_client.get(f"{URL}?start=2026-11-03&end=2026-11-07")
    assert response.status_code == 200
    assert response.context["report"]["totals"]["requests"] == 16
    assert "Create an API key" not in response.content.decode()


def test_the_navigation_leads_to_the_page(alice_client, acme):
    html = alice_client.get("/").content.decode()
    assert '<a href="/usage/">Usage</a>' in html
    assert (
        '<a href="/usage/" aria-current="page">Usage</a>' in alice_client.get(URL).content.decode()
    )


def test_charlie_sees_none_of_acmes_usage(charlie_client, ledger):
    response = charlie_client.get(f"{URL}?start=2026-11-01&end=2026-11-30")

    html = response.content.decode()
    assert response.status_code == 200
    for marker in ("production", "nightly", "ft:tiny-chat:acme::x", "Acme"):
        assert marker not in html
    for key in ledger.values():
        assert key.public_id not in html and f"…{key.last_four}" not in html


def test_charlie_sees_only_globex_usage(charlie_client, ledger, globex):
    report = charlie_client.get(f"{URL}?start=2026-11-01&end=2026-11-30").context["report"]
    assert report["totals"] == {
        "requests": 7,
        "prompt_tokens": 70,
        "completion_tokens": 7,
        "total_tokens": 77,
    }
    assert [model for model, _ in report["models"]] == ["globex-secret-model"]


def test_revoked_and_deleted_keys_keep_their_usage_and_leave_the_limits(
    alice_client, acme, alice, ledger
):
    from tenants import services

    limited = ApiKey.objects.for_tenant(acme).get(
        prefix=make_key(acme, alice, name="limited", requests_per_minute=5)[:12]
    )
    entry(acme, hour=at(5), key=limited.public_id, n=2, p=2, c=2)
    entry(acme, hour=at(5), key="key_gone", n=1, p=1, c=1)
    assert [row["key"] for row in alice_client.get(URL).context["limits"]] == [None, limited]
    services.api_key_revoke(tenant=acme, actor=None, api_key=limited)

    page = alice_client.get(f"{URL}?start=2026-11-05&end=2026-11-05")

    rows = {row["public_id"]: row for row in page.context["key_rows"]}
    assert rows[limited.public_id]["key"] == limited and rows[limited.public_id]["requests"] == 2
    assert rows["key_gone"]["key"] is None and rows["key_gone"]["total_tokens"] == 2
    html = page.content.decode()
    assert '<span class="badge">revoked</span>' in html and "A deleted key" in html
    assert [row["key"] for row in page.context["limits"]] == [None]
