"""Races on unique fields are answered by the database, not by a check before the write.

Each test holds one write open in a thread and sends the racer in while it is
uncommitted: the racer's check cannot see it, its insert waits on the unique index,
and the answer after the commit is what the test asserts. SQLite cannot express this
(it has one writer: the racer fails with "database is locked" before it can insert),
so these run on PostgreSQL only.
"""

import threading
import time
from collections.abc import Callable
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction

from tenants import services
from tenants.errors import TenantError
from tenants.models import Membership, Organization, User
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
        reason="SQLite has a single writer and cannot hold a row uncommitted while another "
        "connection inserts against the same unique index",
    ),
    pytest.mark.django_db(transaction=True),
]


def _in_thread(target: Callable) -> threading.Thread:
    thread = threading.Thread(target=_capturing(target))
    thread.outcome = {}
    thread.start()
    return thread


def _capturing(target: Callable) -> Callable:
    def run():
        outcome = threading.current_thread().outcome
        try:
            outcome["value"] = target()
        except BaseException as error:
            outcome["error"] = error
        finally:
            connection.close()

    return run


def _wait_until_blocked(timeout: float = 10) -> None:
    """Until some connection waits on a lock (the racer's insert on the unique index)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the racer never waited on the first transaction")


def _race(first: Callable, racer: Callable):
    """Run `first` in an open transaction, send `racer` in, then commit; the racer's outcome."""
    started, release = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            value = first()
            started.set()
            assert release.wait(10)
        return value

    holder = _in_thread(hold)
    assert started.wait(10)
    racing = _in_thread(racer)
    _wait_until_blocked()
    release.set()
    holder.join(10)
    racing.join(10)
    assert "error" not in holder.outcome, holder.outcome
    return racing.outcome


def test_two_organizations_with_the_same_slug_one_is_refused_with_slug_taken():
    owners = UserFactory(), UserFactory()
    outcome = _race(
        lambda: services.organization_create(name="Rocket", slug="rocket", owner=owners[0]),
        lambda: services.organization_create(name="Rocket 2", slug="rocket", owner=owners[1]),
    )
    error = outcome.get("error")
    assert isinstance(error, TenantError), outcome  # before: IntegrityError, a 500
    assert (error.code, error.param, error.message) == (
        "slug_taken",
        "slug",
        "The slug 'rocket' is taken.",
    )
    assert list(Organization.objects.values_list("slug", flat=True)) == ["rocket"]
    assert not Membership.unscoped.filter(user=owners[1]).exists()


def test_two_organizations_with_the_same_name_both_get_a_slug():
    owners = UserFactory(), UserFactory()
    outcome = _race(
        lambda: services.organization_create(name="Acme Rocket", owner=owners[0]),
        lambda: services.organization_create(name="Acme Rocket", owner=owners[1]),
    )
    assert "error" not in outcome, outcome
    assert outcome["value"].slug == "acme-rocket-2"
    assert sorted(Organization.objects.values_list("slug", flat=True)) == [
        "acme-rocket",
        "acme-rocket-2",
    ]


def test_a_dashboard_signup_racing_another_with_the_same_org_name():
    first = UserFactory()
    outcome = _race(
        lambda: services.organization_create(name="Zeta", owner=first),
        lambda: services.user_sign_up(
            email="z@example.com", name="Zed", password="pw-1234567", organization_name="Zeta"
        ),
    )
    assert "error" not in outcome, outcome
    user, organization = outcome["value"]
    assert organization.slug == "zeta-2"
    assert Membership.unscoped.get(user=user).tenant == organization


def test_create_tenant_racing_a_signup_with_the_owner_address_uses_that_user():
    out = StringIO()
    outcome = _race(
        lambda: User.objects.create_user("o@example.com", "pw-1234567"),
        lambda: call_command("create_tenant", "omega", "--owner", "o@example.com", stdout=out),
    )
    assert "error" not in outcome, outcome  # before: IntegrityError on the user's e-mail
    assert User.objects.filter(email="o@example.com").count() == 1
    owner = Membership.unscoped.get(tenant__slug="omega").user
    assert owner.email == "o@example.com"
    assert out.getvalue().splitlines()[-1].startswith("tm-")


def test_many_threads_creating_one_slug_leave_one_organization():
    owners = [UserFactory() for _ in range(8)]
    barrier = threading.Barrier(len(owners))

    def create(owner):
        def run():
            barrier.wait(10)
            return services.organization_create(name="Same", slug="same", owner=owner)

        return run

    threads = [_in_thread(create(owner)) for owner in owners]
    for thread in threads:
        thread.join(20)
    outcomes = [thread.outcome for thread in threads]
    assert sum("value" in outcome for outcome in outcomes) == 1
    errors = [outcome["error"] for outcome in outcomes if "error" in outcome]
    assert all(isinstance(error, TenantError) and error.code == "slug_taken" for error in errors), (
        errors
    )
    assert Organization.objects.filter(slug="same").count() == 1
    assert Membership.unscoped.filter(tenant__slug="same").count() == 1


def test_two_invitations_of_one_address_one_is_refused_with_already_invited():
    organization = Organization.objects.create(name="Inv", slug="inv")
    outcome = _race(
        lambda: services.member_invite(tenant=organization, actor=None, email="p@example.com"),
        lambda: services.member_invite(tenant=organization, actor=None, email="P@example.com"),
    )
    error = outcome.get("error")
    assert isinstance(error, TenantError), outcome
    assert (error.code, error.message) == (
        "already_invited",
        "p@example.com already has a pending invitation.",
    )
