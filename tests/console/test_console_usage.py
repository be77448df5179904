"""The console's usage by organization: exact ledger sums per organization over a date
range, by kind, sortable, linked to each organization; staff only."""

from datetime import UTC, datetime

import pytest
from django.test import Client

from tests.dashboard.test_usage import entry
from tests.factories import OrganizationFactory

URL = "/console/metering/ledgerentry/by-organization/"
NOVEMBER = "start=2026-11-01&end=2026-11-30"


def at(day: int, hour: int = 9) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


@pytest.fixture
def usage(acme, globex):
    initech = OrganizationFactory(name="Initech", slug="initech")
    entry(acme, hour=at(3), n=2, p=20, c=8)
    entry(acme, hour=at(4), kind="training", n=1, p=1000, c=0)
    entry(acme, hour=at(5), kind="embedding", model="all-MiniLM-L6-v2", n=4, p=40, c=0)
    entry(globex, hour=at(3), n=7, p=70, c=700)
    entry(globex, hour=at(6), kind="completion", n=1, p=5, c=5)
    entry(globex, hour=datetime(2026, 12, 1, 0, tzinfo=UTC), n=99, p=999, c=999)  # after
    entry(initech, hour=datetime(2026, 10, 31, 23, tzinfo=UTC), n=3, p=3, c=3)  # before
    return {"acme": acme, "globex": globex, "initech": initech}


def _rows(response) -> list[tuple]:
    assert response.status_code == 200, response.content[:300]
    return [
        (
            row["organization"].slug,
            row["organization"].requests,
            row["organization"].prompt_tokens,
            row["organization"].completion_tokens,
            row["organization"].total_tokens,
            tuple(row["kinds"]),
        )
        for row in response.context["rows"]
    ]


def test_every_organization_with_its_sums_by_kind_largest_first(console, usage):
    response = console.get(f"{URL}?{NOVEMBER}")

    # kinds: chat, completion, embedding, training, batch
    assert _rows(response) == [
        ("acme", 7, 1060, 8, 1068, (28, 0, 40, 1000, 0)),
        ("globex", 8, 75, 705, 780, (770, 10, 0, 0, 0)),
        ("initech", 0, 0, 0, 0, (0, 0, 0, 0, 0)),
    ]
    totals = response.context["totals"]
    assert totals["requests"] == 15 and totals["total_tokens"] == 1848
    assert response.context["totals_by_kind"] == [798, 10, 40, 1000, 0]
    html = response.content.decode()
    assert f'href="/console/tenants/organization/{usage["acme"].pk}/change/"' in html
    assert "1,068" in html


def test_the_same_sums_as_the_organizations_own_usage_api(console, usage, acme, alice_api):
    api = alice_api.get(f"/api/v1/usage?{NOVEMBER}").json()["totals"]
    (acme_row,) = [row for row in _rows(console.get(f"{URL}?{NOVEMBER}")) if row[0] == "acme"]
    assert acme_row[1:5] == (
        api["requests"],
        api["prompt_tokens"],
        api["completion_tokens"],
        api["total_tokens"],
    )


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("-total", ["acme", "globex", "initech"]),
        ("total", ["initech", "globex", "acme"]),
        ("-completion", ["globex", "acme", "initech"]),
        ("-requests", ["globex", "acme", "initech"]),
        ("organization", ["acme", "globex", "initech"]),
        ("-organization", ["initech", "globex", "acme"]),
        ("-kind_training", ["acme", "globex", "initech"]),
        ("-kind_chat", ["globex", "acme", "initech"]),
        ("-kind_completion", ["globex", "acme", "initech"]),
        ("kind_completion", ["acme", "initech", "globex"]),  # ties by name
        ("completion", ["initech", "acme", "globex"]),
        ("colour", ["acme", "globex", "initech"]),  # unknown: the default, largest first
    ],
)
def test_sortable_by_every_column(console, usage, sort, order):
    response = console.get(f"{URL}?{NOVEMBER}&o={sort}")
    assert [row[0] for row in _rows(response)] == order


def test_each_header_sorts_by_it_and_a_second_click_turns_it_round(console, usage):
    columns = console.get(f"{URL}?{NOVEMBER}&o=-completion").context["columns"]
    by_label = {column["label"]: column for column in columns}
    assert by_label["Completion tokens"]["sorted"] == "descending"
    assert by_label["Completion tokens"]["url"].endswith("&o=completion")
    assert by_label["Requests"]["url"].endswith("&o=-requests")
    assert by_label["Organization"]["url"].endswith("&o=organization")
    assert [column["label"] for column in columns] == [
        "Organization",
        "Requests",
        "Prompt tokens",
        "Completion tokens",
        "Total tokens",
        "Kind: chat",
        "Kind: completion",
        "Kind: embedding",
        "Kind: training",
        "Kind: batch",
    ]
    assert by_label["Kind: completion"]["sorted"] == ""
    assert by_label["Kind: completion"]["url"].endswith("&o=-kind_completion")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("start=soon", "Enter a date such as 2026-12-01."),
        ("start=2026-11-30&end=2026-11-01", "The start date must not be after the end date."),
        ("start=2024-01-01&end=2026-01-01", "The range may span at most 366 days."),
    ],
)
def test_a_bad_range_says_what_is_wrong(console, usage, query, message):
    response = console.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert message in response.content.decode()


def test_the_ledger_list_links_to_it(console, usage):
    html = console.get("/console/metering/ledgerentry/").content.decode()
    assert f'href="{URL}"' in html and "Usage by organization" in html


def test_staff_only(alice, usage):
    assert Client().get(URL).status_code == 302
    client = Client()
    client.force_login(alice)
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == f"/console/login/?next={URL}"


def test_staff_without_the_ledgers_view_permission_are_refused(db, usage):
    from tenants.models import User

    clerk = User.objects.create_user("clerk@tokenmill.example", "x" * 12, is_staff=True)
    client = Client()
    client.force_login(clerk)
    assert client.get(URL).status_code == 403
