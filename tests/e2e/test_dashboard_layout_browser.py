"""The dashboard's layout in a real browser, at a laptop's 1280 px and a phone's 390 px:
no page scrolls sideways, table actions stay in reach, the navigation shows that it
scrolls, destructive actions ask on a page of ours, and a suspended organization's
pages say so and disable what cannot be done."""

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import test_dashboard_browser as browser

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed"),
]

# The browser fixtures of the dashboard's browser tests (Debian's Chromium, the live server).
_allow_database_calls_beside_playwright = browser._allow_database_calls_beside_playwright
base_url = browser.base_url
browser_type_launch_args = browser.browser_type_launch_args
shots = browser.shots

LONG_NAME = "Acme Intergalactic Widgets, Gadgets and Interplanetary Logistics Holdings Worldwide"
WIDTHS = [1280, 390]


@pytest.fixture
def busy_acme(acme, alice, bob, tiny_chat, artifact_store):
    """Acme with a long name, and a few of everything the tables list."""
    from django.utils import timezone

    from tenants import services as tenant_services
    from tenants.models import ApiKey
    from tests.dashboard.test_models import finished_job
    from tests.factories import MembershipFactory, UserFactory, make_key

    acme.name = LONG_NAME
    acme.save(update_fields=["name"])
    MembershipFactory(
        tenant=acme,
        user=UserFactory(email="a.very.long.address.for.a.teammate@subsidiary.example.com"),
    )
    for name in ["production backend", "nightly evaluation pipeline for fine-tuned models", "ci"]:
        make_key(
            acme,
            alice,
            name=name,
            scopes=["models", "files", "fine_tuning", "organization"],
            requests_per_minute=600,
            tokens_per_minute=150_000,
            expires_at=timezone.now() + timedelta(days=30),
        )
    ApiKey.unscoped.filter(tenant=acme).update(last_used_at=timezone.now())
    tenant_services.member_invite(
        tenant=acme, actor=None, email="someone.invited.with.a.long.address@example.org"
    )
    finished_job(acme, suffix="support-assistant-v2", checkpoints=[4, 8])
    from tests.dashboard.test_batches import make_batch, stored_file

    make_batch(
        acme,
        status="in_progress",
        request_counts_total=48_000,
        request_counts_completed=31_250,
        request_counts_failed=1_204,
    )
    make_batch(
        acme,
        status="completed",
        request_counts_total=1_000,
        request_counts_completed=998,
        request_counts_failed=2,
        output_file=stored_file(acme, b"{}\n", purpose="batch_output", filename="out.jsonl"),
        error_file=stored_file(acme, b"{}\n", purpose="batch_output", filename="err.jsonl"),
    )
    make_batch(
        acme,
        status="failed",
        failed_at=timezone.now(),
        metadata={"pipeline": "nightly evaluation of the support assistant"},
        errors=[
            {
                "code": "invalid_value",
                "message": f"Line {line}: 'messages[0].content' must be a string or a list "
                "of content parts, got a number.",
                "param": "body.messages[0].content",
                "line": line,
            }
            for line in (3, 17, 4096)
        ],
    )
    return acme


PAGES_WITH_TABLES = [
    "/",
    "/api-keys/",
    "/members/",
    "/models/",
    "/fine-tuning/",
    "/datasets/",
    "/batches/",
]


@pytest.mark.parametrize("width", WIDTHS)
def test_no_page_scrolls_sideways_and_table_actions_stay_in_reach(
    base_url: str, busy_acme, page: Page, shots: Path, width: int
):
    page.set_viewport_size({"width": width, "height": 900})
    browser.log_in(page, "alice@example.com")

    for url in PAGES_WITH_TABLES:
        page.goto(url)
        browser.assert_no_sideways_scroll(page)
        # Figures stay on one line in their boxes.
        for figure in page.locator(".stat-value, .kpis dd").all():
            lines = figure.evaluate(
                "el => el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)"
            )
            assert lines < 1.5, (url, figure.inner_text(), lines)
        name = url.strip("/") or "home"
        page.screenshot(path=str(shots / f"layout-{name}-{width}.png"), full_page=True)
        for action in page.locator("td.actions-cell .btn").all():
            box = action.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (
                url,
                action.inner_text(),
                box,
            )

    page.goto("/api-keys/")
    if width == 1280:  # the keys table fits: Revoke is on screen without scrolling the table
        wrap = page.locator(".keys-table").locator("xpath=..")
        assert wrap.evaluate("el => el.scrollWidth <= el.clientWidth")
        # and the whole navigation fits beside a long organization name
        nav = page.get_by_role("navigation", name="Main")
        assert nav.evaluate("el => el.scrollWidth <= el.clientWidth")
    revoke = page.get_by_role("link", name="Revoke").first
    expect(revoke).to_be_in_viewport()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_batch_page_fits_with_its_bad_lines(
    base_url: str, busy_acme, page: Page, shots: Path, width: int
):
    from tokenmill.batches.models import Batch

    page.set_viewport_size({"width": width, "height": 900})
    browser.log_in(page, "alice@example.com")
    for batch in Batch.objects.for_tenant(busy_acme).order_by("created_at"):  # failed last
        page.goto(f"/batches/{batch.public_id}/")
        browser.assert_no_sideways_scroll(page)
        page.screenshot(
            path=str(shots / f"layout-batch-{batch.status}-{width}.png"), full_page=True
        )
    expect(page.get_by_text("Nothing ran: every line is checked")).to_be_visible()
    expect(page.locator(".errors-table td.num", has_text="4096")).to_be_visible()


def test_the_navigation_on_a_phone_shows_that_it_scrolls(base_url: str, busy_acme, page: Page):
    page.set_viewport_size({"width": 390, "height": 800})
    browser.log_in(page, "alice@example.com")
    page.goto("/api-keys/")

    nav = page.get_by_role("navigation", name="Main")
    assert nav.evaluate("el => el.scrollWidth > el.clientWidth")
    expect(nav).to_have_class(re.compile(r"has-more-(left|right)"))
    expect(nav.get_by_role("link", name="API keys")).to_be_in_viewport()  # the current page
    nav.evaluate("el => { el.scrollLeft = 0; el.dispatchEvent(new Event('scroll')); }")
    expect(nav).to_have_class(re.compile(r"has-more-right"))
    expect(nav).not_to_have_class(re.compile(r"has-more-left"))


def test_destructive_actions_ask_on_a_page_never_a_browser_dialog(
    base_url: str, busy_acme, page: Page
):
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    browser.log_in(page, "alice@example.com")

    page.goto("/models/")
    page.get_by_role("link", name="Delete").first.click()
    expect(page).to_have_url(re.compile(r"/models/ft:.+/delete/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Delete ft:tiny-chat:")
    page.get_by_role("button", name="Delete model").click()
    expect(page.get_by_text(re.compile(r"^Deleted ft:tiny-chat:"))).to_be_visible()

    page.goto("/members/")
    page.locator("#invitations-title").scroll_into_view_if_needed()
    page.get_by_role("link", name="Revoke").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Revoke the invitation for someone.invited.with.a.long.address@example.org?"
    )
    page.get_by_role("link", name="Cancel").click()
    expect(page).to_have_url(f"{base_url}/members/")
    assert dialogs == []


def test_an_invitation_shows_its_link_to_copy(base_url: str, busy_acme, page: Page, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
    browser.log_in(page, "alice@example.com")
    page.goto("/members/")

    page.get_by_label("E-mail").fill("frank@example.com")
    page.get_by_role("button", name="Send invitation").click()

    expect(page.get_by_text("E-mail is not set up on this installation")).to_be_visible()
    link = page.locator("#invitation-link").inner_text().strip()
    assert re.match(rf"^{re.escape(settings.PUBLIC_URL)}/invitations/[^/]+/$", link)
    page.get_by_role("button", name="Copy link").click()
    assert page.evaluate("navigator.clipboard.readText()") == link
    browser.assert_no_sideways_scroll(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_suspended_organization_says_so_and_disables_changes(
    base_url: str, busy_acme, page: Page, settings, shots: Path, width: int
):
    from tenants import services as tenant_services

    settings.SUPPORT_EMAIL = "ops@tokenmill.example"
    tenant_services.organization_set_status(tenant=busy_acme, status="suspended")
    page.set_viewport_size({"width": width, "height": 900})
    browser.log_in(page, "alice@example.com")

    page.goto("/fine-tuning/")
    banner = page.locator("[data-suspended-banner]")
    expect(banner).to_contain_text("is suspended.")
    expect(banner.get_by_role("link", name="ops@tokenmill.example")).to_have_attribute(
        "href", "mailto:ops@tokenmill.example"
    )
    page.get_by_role("link", name=re.compile("ftjob-")).first.click()
    expect(page.locator(".checkpoint", has_text="Step 4")).to_be_visible()
    expect(page.get_by_role("button", name="Make step 4 a model")).to_have_count(0)
    expect(page.get_by_role("link", name="Cancel job")).to_have_count(0)
    browser.assert_no_sideways_scroll(page)
    page.screenshot(path=str(shots / f"layout-suspended-{width}.png"), full_page=True)
    # A confirmation page opened by its address offers nothing either: its button is off.
    from tenants.models import ApiKey

    key = ApiKey.unscoped.filter(tenant=busy_acme).first()
    page.goto(f"/api-keys/{key.public_id}/revoke/")
    expect(page.get_by_role("button", name="Revoke key")).to_be_disabled()
    # Logging out and switching organizations still work.
    page.get_by_label("Account menu").click()
    expect(page.get_by_role("button", name="Log out")).to_be_enabled()
