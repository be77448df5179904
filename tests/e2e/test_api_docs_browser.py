"""The API reference in a real browser: Swagger UI renders every operation from the
project's own static files, with nothing requested beyond the machine itself."""

import re
import shutil

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import test_dashboard_browser as browser_fixtures

# The browser fixtures of the dashboard's browser tests (Debian's Chromium, the live server).
_allow_database_calls_beside_playwright = browser_fixtures._allow_database_calls_beside_playwright
base_url = browser_fixtures.base_url
browser_type_launch_args = browser_fixtures.browser_type_launch_args

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed"),
]


def test_the_api_reference_renders_offline(base_url: str, tiny_chat, page: Page):
    requested, offsite, console_errors = [], [], []

    def seen(request):
        requested.append(request.url)
        if not request.url.startswith((base_url, "data:", "blob:")):
            offsite.append(request.url)

    page.on("request", seen)
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))

    page.goto("/api/docs/")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Tokenmill API")
    operations = page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible()
    paths = {text.replace("\u200b", "") for text in operations.all_inner_texts()}
    assert {"/v1/models", "/v1/fine_tuning/jobs", "/api/v1/api-keys"} <= paths
    assert any(re.search(r"/static/drf_spectacular_sidecar/.+\.js$", url) for url in requested)
    assert offsite == []
    assert console_errors == []
