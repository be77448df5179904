"""The playground in a real browser (Debian's Chromium), at desktop and phone widths:
pick a model, set the sampling options, and watch the answer stream in.

The platform runs under uvicorn (ASGI), as in production, so the stream is real; the
model is the fast fake replica.
"""

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.factories import PASSWORD
from tests.gateway.fake_backend import FakeBackend
from tests.gateway.live import LiveServer
from tokenmill.catalog.services import replica_register
from tokenmill.gateway import callers, routes

CHROMIUM = shutil.which("chromium")

pytestmark = [
    pytest.mark.browser,
    # WhiteNoise serves static files with a sync iterator, which Django's ASGI handler
    # warns about; the page's CSS and script are served all the same.
    pytest.mark.filterwarnings(
        "ignore:StreamingHttpResponse must consume synchronous iterators:Warning"
    ),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make browser)"),
]


@pytest.fixture(scope="session", autouse=True)
def _allow_database_calls_beside_playwright():
    # See test_dashboard_browser.py: Playwright's loop in the test thread trips Django's
    # async-safety check on plain database calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


@pytest.fixture(scope="session")
def base_url():
    # Replaces pytest-playwright's fallback fixture, which pytest 9 warns about; the
    # platform's URL is known only per test (platform_url), so pages use absolute URLs.
    return None


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--disable-background-networking", "--disable-component-update", "--no-first-run"],
    }


@pytest.fixture
def platform_url(transactional_db, settings, monkeypatch):
    from django.db import connections

    # Not persistent under ASGI (see tests/gateway/conftest.py: asgi_connections).
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    from tokenmill.asgi import application

    settings.GATEWAY_LOCAL_CACHE_SECONDS = 0.2
    routes.forget_local()
    callers.forget_local()
    fake = LiveServer(FakeBackend()).start()
    fake.app.state.chunk_delay = 0.03
    replica_register(model_id="tiny-chat", url=fake.url)
    with LiveServer(application, lifespan="on") as server:
        yield server.url
    fake.stop()
    routes.forget_local()


@pytest.mark.parametrize("width", [1280, 390])
def test_chat_in_the_playground_streams_the_answer(
    platform_url: str, alice, page: Page, width: int, tmp_path: Path
):
    page.set_viewport_size({"width": width, "height": 900})
    console_errors = []
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
    page.goto(platform_url + "/login/")
    page.get_by_label("E-mail").fill(alice.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Playground").first.click()
    expect(page.get_by_role("heading", name="Playground")).to_be_visible()

    page.get_by_label("System prompt").fill("You are terse.")
    page.get_by_label("Temperature").fill("0.3")
    page.get_by_label("Top P").fill("0.9")
    page.get_by_label("Max tokens").fill("32")
    page.get_by_label("Stop").fill("###")
    page.get_by_label("Message").fill("Hello there")
    page.get_by_role("button", name="Send").click()

    answer = page.locator(".turn-assistant .turn-text")
    expect(answer).to_contain_text("t0 t1", timeout=5000)
    expect(page.locator(".turn-assistant.is-streaming")).to_have_count(1)  # still arriving
    expect(answer).to_contain_text("t15", timeout=10000)
    expect(page.locator(".turn-assistant.is-streaming")).to_have_count(0)
    expect(page.locator("#pg-usage")).to_have_text("7 prompt + 16 completion tokens")
    expect(page.locator(".turn-user .turn-text")).to_have_text("Hello there")

    folder = Path(os.environ.get("DASHBOARD_SCREENSHOT_DIR") or tmp_path)
    page.screenshot(path=str(folder / f"playground-{width}.png"), full_page=True)
    # Nothing spills sideways at either width.
    wide = page.evaluate(
        "[...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right"
        " > window.innerWidth + 1).map(e => e.tagName + '.' + e.className).slice(0, 5)"
    )
    assert wide == []
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0

    # A bad value gets the gateway's own message.
    page.get_by_label("Temperature").fill("5")
    page.get_by_label("Message").fill("Again")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#pg-error")).to_have_text(
        "Invalid 'temperature': 5 is out of range; it must be between 0 and 2."
    )
    assert console_errors == [] or all("400" in e for e in console_errors)
