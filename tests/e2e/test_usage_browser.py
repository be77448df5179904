"""The usage page in a real browser, at a laptop's 1280 px and a phone's 390 px: no
sideways scroll, the charts are drawn and visible, the range picker and its presets
change what the page shows, and a bad range says what is wrong."""

import re
import shutil
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import test_dashboard_browser as browser
from tests.e2e import test_dashboard_layout_browser as layout
from tokenmill.metering.ranges import today

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed"),
]

_allow_database_calls_beside_playwright = browser._allow_database_calls_beside_playwright
base_url = browser.base_url
browser_type_launch_args = browser.browser_type_launch_args
shots = browser.shots
busy_acme = layout.busy_acme

MODELS = ["tiny-chat", "ft:tiny-chat:acme:support-assistant-v2:a1b2c3", "all-MiniLM-L6-v2"]


@pytest.fixture
def acme_usage(busy_acme):
    """A month of usage: each day a few requests per key and model, busier lately."""
    from tenants.models import ApiKey
    from tokenmill.metering.models import LedgerEntry

    keys = [key.public_id for key in ApiKey.unscoped.filter(tenant=busy_acme)] + [""]
    rows = []
    for back in range(0, 30):
        day = today() - timedelta(days=back)
        if back in (4, 11, 12):
            continue  # quiet days: the chart shows them as zero
        for i, model in enumerate(MODELS):
            key = keys[(back + i) % len(keys)]
            rows.append(
                LedgerEntry(
                    tenant=busy_acme,
                    key_public_id=key,
                    model=model,
                    base_model="tiny-chat",
                    kind="embedding" if model == "all-MiniLM-L6-v2" else "chat",
                    hour=datetime.combine(day, time(9 + i), UTC),
                    requests=(30 - back) * (3 - i) + 1,
                    prompt_tokens=(30 - back) * 1_250 * (3 - i) + 17,
                    completion_tokens=0 if i == 2 else (30 - back) * 410 * (3 - i),
                )
            )
    LedgerEntry.unscoped.bulk_create(rows)
    return busy_acme


def _totals(page: Page) -> dict[str, str]:
    return {
        name: page.locator(f'[data-total="{name}"]').inner_text()
        for name in ("requests", "prompt_tokens", "completion_tokens", "total_tokens")
    }


@pytest.mark.parametrize("width", layout.WIDTHS)
def test_the_usage_page_fits_and_its_charts_are_drawn(
    base_url: str, acme_usage, page: Page, shots: Path, width: int
):
    console_errors = []
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
    page.set_viewport_size({"width": width, "height": 900})
    browser.log_in(page, "alice@example.com")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Usage")
    browser.assert_no_sideways_scroll(page)
    variant = "" if width > 600 else "-narrow"  # a phone gets the narrow drawing
    for chart in ("tokens-chart", "requests-chart"):
        svg = page.locator(f'svg[data-chart="{chart}{variant}"]')
        expect(svg).to_be_visible()
        box = svg.bounding_box()
        assert box["width"] >= min(width - 80, 300) and box["height"] > 100, (chart, box)
        assert svg.locator("g.bar").count() == 30
        # Every bar is drawn inside the chart, the tallest reaching near its top.
        heights = svg.locator("g.bar rect:not(.bar-hit)").evaluate_all(
            "rects => rects.map(r => r.getBBox().height)"
        )
        assert heights and max(heights) > 100, heights
        page.locator("section", has=svg).screenshot(path=str(shots / f"usage-{chart}-{width}.png"))
        other = page.locator(f'svg[data-chart="{chart}{"-narrow" if not variant else ""}"]')
        expect(other).to_be_hidden()
    expect(page.get_by_role("img", name=re.compile("Tokens by day"))).to_be_visible()
    for figure in page.locator(".stat-value").all():  # figures stay on one line
        lines = figure.evaluate(
            "el => el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)"
        )
        assert lines < 1.5, (figure.inner_text(), lines)
    expect(page.locator('[data-usage-table="keys"]')).to_contain_text("production backend")
    expect(page.locator("[data-rate-limits]")).to_contain_text("600")
    page.evaluate("window.scrollTo(0, 0)")  # the sticky bar at the top, where it belongs
    page.screenshot(path=str(shots / f"usage-{width}.png"), full_page=True)
    browser.assert_no_sideways_scroll(page)
    assert console_errors == []


def test_the_range_picker_and_its_presets_change_the_figures(
    base_url: str, acme_usage, page: Page, alice_key_for_api
):
    browser.log_in(page, "alice@example.com")
    page.goto("/usage/")
    expect(page.get_by_role("link", name="Last 30 days")).to_have_attribute("aria-current", "true")
    month = _totals(page)

    day = today() - timedelta(days=2)
    page.get_by_label("From", exact=True).fill(f"{day:%Y-%m-%d}")
    page.get_by_label("To", exact=True).fill(f"{day:%Y-%m-%d}")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(rf"start={day:%Y-%m-%d}&end={day:%Y-%m-%d}"))
    one_day = _totals(page)
    assert one_day != month
    api = alice_key_for_api(f"/api/v1/usage?start={day:%Y-%m-%d}&end={day:%Y-%m-%d}")
    assert one_day == {name: f"{value:,}" for name, value in api["totals"].items()}
    assert page.locator('svg[data-chart="tokens-chart"] g.bar').count() == 1
    # A single day prints its figure above its bar: readable without hovering.
    expect(page.locator('svg[data-chart="tokens-chart"] .bar-value')).to_have_count(1)

    page.get_by_role("link", name="Last 7 days").click()
    expect(page.get_by_role("link", name="Last 7 days")).to_have_attribute("aria-current", "true")
    assert page.locator('svg[data-chart="requests-chart"] g.bar').count() == 7
    expect(page.get_by_label("From", exact=True)).to_have_value(
        f"{today() - timedelta(days=6):%Y-%m-%d}"
    )

    page.get_by_label("From", exact=True).fill(f"{today():%Y-%m-%d}")
    page.get_by_label("To", exact=True).fill(f"{today() - timedelta(days=3):%Y-%m-%d}")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("[data-range-error]")).to_be_visible()
    expect(page.get_by_text("The start date must not be after the end date.").first).to_be_visible()
    browser.assert_no_sideways_scroll(page)


@pytest.fixture
def alice_key_for_api(acme_usage, alice):
    """`get(path)`: the platform API's JSON for that path, with a key of alice's."""
    from tests.conftest import bearer_client
    from tests.factories import make_key

    client = bearer_client(make_key(acme_usage, alice, name="api check"))
    return lambda path: client.get(path).json()
