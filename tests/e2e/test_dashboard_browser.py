"""The dashboard in a real browser: sign up, create an API key, see it once, see it listed;
upload a dataset and see its report; watch a fine-tuning job's page follow the run.

Drives Debian's Chromium (no `playwright install`) against pytest-django's live server.
"""

import math
import os
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.factories import PASSWORD
from tests.files.helpers import chat_lines, jsonl

KEY = re.compile(r"^tm-[A-Za-z0-9]{40}$")
CHROMIUM = shutil.which("chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make browser)"),
]


@pytest.fixture(scope="session", autouse=True)
def _allow_database_calls_beside_playwright():
    # Playwright's sync API keeps an asyncio event loop running in the test thread from
    # its start to the end of the session, and Django refuses database calls from a
    # thread with a running loop (SynchronousOnlyOperation): the test database's setup
    # and the flush after each transactional test included. Nothing here runs async
    # code, so the check only gets in the way. It stays off once set, since the loop
    # outlives this module. Session scope, so it is set before Playwright starts.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


@pytest.fixture(scope="session")
def base_url(live_server) -> str:
    # Also replaces pytest-playwright's fallback fixture, which pytest 9 warns about.
    return live_server.url


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
        ],
    }


@pytest.fixture
def screenshot_path(tmp_path) -> Path:
    folder = Path(os.environ.get("DASHBOARD_SCREENSHOT_DIR") or tmp_path)
    return folder / "dashboard-api-keys.png"


def test_sign_up_create_a_key_see_it_once(
    base_url: str, tiny_chat, page: Page, screenshot_path: Path
):
    offsite, console_errors = [], []
    page.on("request", lambda r: r.url.startswith((base_url, "data:")) or offsite.append(r.url))
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)

    page.goto("/signup/")
    page.get_by_label("Your name").fill("Erin Example")
    page.get_by_label("Work e-mail").fill("erin@example.com")
    page.get_by_label("Password").fill("correct-horse-battery-staple")
    page.get_by_label("Organization name").fill("Initech")
    page.get_by_role("button", name="Create account").click()

    expect(page).to_have_url(f"{base_url}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Initech")
    expect(page.get_by_text("tiny-chat").first).to_be_visible()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    expect(page.get_by_text("No API keys yet")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("ci pipeline")
    page.get_by_label("Requests per minute").fill("120")
    page.get_by_role("button", name="Create key").click()

    expect(page.get_by_text("It will not be shown again.")).to_be_visible()
    plaintext = page.locator("#new-key-value").inner_text().strip()
    assert KEY.match(plaintext)
    page.get_by_role("button", name="Copy key").click()
    expect(page.get_by_role("button", name="Copied!")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == plaintext

    redacted = f"{plaintext[:12]}…{plaintext[-4:]}"
    row = page.locator("tr", has_text="ci pipeline")
    expect(row).to_contain_text(redacted)
    expect(row).to_contain_text("120 req/min")
    page.screenshot(path=str(screenshot_path), full_page=True)

    # Reloading lists the key without its secret, and does not post the form again.
    page.reload()
    expect(page.get_by_text("It will not be shown again.")).to_have_count(0)
    assert plaintext not in page.content()
    expect(page.locator("tr", has_text="ci pipeline")).to_have_count(1)
    expect(page.locator("tr", has_text="ci pipeline")).to_contain_text(redacted)

    assert offsite == []  # no CDN, no web fonts: nothing leaves the machine
    assert console_errors == []


def log_in(page: Page, email: str) -> None:
    page.goto("/login/")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()


@pytest.fixture
def shots(tmp_path) -> Path:
    return Path(os.environ.get("DASHBOARD_SCREENSHOT_DIR") or tmp_path)


def test_upload_a_dataset_then_see_its_report_and_the_estimate(
    base_url: str, tiny_chat, alice, artifact_store, demo_model_path, page: Page, shots, tmp_path
):
    offsite, console_errors = [], []
    page.on("request", lambda r: r.url.startswith((base_url, "data:")) or offsite.append(r.url))
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
    dataset = tmp_path / "support.jsonl"
    dataset.write_bytes(jsonl(chat_lines(24)))
    log_in(page, "alice@example.com")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Datasets").click()
    expect(page.get_by_text("No files yet")).to_be_visible()
    page.locator('input[type="file"]').set_input_files(str(dataset))
    expect(page.locator("[data-file-name]")).to_contain_text("support.jsonl")
    page.get_by_role("button", name="Upload").click()
    # The bar reaches 100 % before the page moves on to the file's report.
    page.wait_for_function(
        "document.querySelector('[data-progress] .progress')?.getAttribute('aria-valuenow') === '100'",
        polling="raf",
    )

    expect(page).to_have_url(re.compile(r"/datasets/file-[A-Za-z0-9]+/$"))
    expect(page.get_by_text("Ready for fine-tuning.")).to_be_visible()
    expect(page.locator(".stat", has_text="Examples")).to_contain_text("24")
    page.screenshot(path=str(shots / "dashboard-dataset.png"), full_page=True)

    page.get_by_role("link", name="Fine-tune on this file").click()
    expect(page.get_by_role("heading", name="New fine-tuning job")).to_be_visible()
    per_epoch = int(page.locator("[data-tokens-per-epoch]").inner_text().replace(",", ""))
    assert per_epoch > 0
    expect(page.locator("[data-review]")).to_be_hidden()  # the estimate follows the fields
    page.get_by_label("Epochs").fill("2")
    expect(page.locator("[data-estimated-tokens]")).to_have_text(f"{2 * per_epoch:,}")
    page.evaluate("window.scrollTo(0, 0)")  # the sticky bar would cover the page's top
    page.screenshot(path=str(shots / "dashboard-new-job.png"), full_page=True)

    assert offsite == []
    assert console_errors == []


def test_the_job_page_draws_the_loss_chart_and_follows_the_run(
    base_url: str, tiny_chat, acme, alice, artifact_store, page: Page, shots
):
    console_errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
    job = running_job_with_metrics(acme, steps=48, total_steps=96)
    log_in(page, "alice@example.com")

    page.goto(f"/fine-tuning/{job.public_id}/")
    expect(page.locator("svg.loss-chart")).to_be_visible()
    expect(page.locator("[data-progress-steps]")).to_have_text("Step 48 of 96")
    page.screenshot(path=str(shots / "dashboard-job.png"), full_page=True)

    expect(page.locator(".chart-axis-title")).to_have_text(["Step", "Loss"])
    page.evaluate("window.stillTheSamePage = true")

    # New metrics arrive: the page polls, and the progress and the chart follow.
    record_step(job, 49, total_steps=96)
    expect(page.locator("[data-progress-steps]")).to_have_text("Step 49 of 96", timeout=8000)
    expect(page.locator(".events .event-message").first).to_have_text(
        re.compile(r"^Step 49/96: training loss=0\.6200, ")
    )
    expect(page.locator(".series-train .legend-item, .legend-item.series-train")).to_contain_text(
        "0.6200"
    )
    drawn_here = page.locator(".series-train path").get_attribute("d")
    assert page.evaluate("window.stillTheSamePage") is True
    # The chart the script drew is the one the server draws for the same metrics.
    page.reload()
    drawn_there = page.locator(".series-train path").get_attribute("d")
    assert drawn_there == drawn_here
    assert console_errors == []


def test_the_job_page_shows_the_end_of_a_cancelled_job_without_a_reload(
    base_url: str, tiny_chat, acme, alice, artifact_store, page: Page, shots
):
    from tokenmill.finetuning import services
    from tokenmill.finetuning.models import JobCheckpoint

    console_errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
    job = running_job_with_metrics(acme, steps=20, total_steps=96)
    log_in(page, "alice@example.com")
    page.goto(f"/fine-tuning/{job.public_id}/")
    expect(page.get_by_role("link", name="Cancel job")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")

    record_step(job, 21, total_steps=96)
    services.job_cancel(tenant=acme, job=job)
    # The worker's last checkpoint is recorded after the cancellation.
    JobCheckpoint.objects.create(
        tenant=acme,
        job=job,
        step_number=21,
        epoch=1,
        fine_tuned_model_checkpoint=f"ft:tiny-chat:acme:support:x:ckpt-step-{21}",
        artifact_key="jobs/x/checkpoints/step-21",
    )

    expect(page.locator("[data-job-status]")).to_have_text("Cancelled", timeout=8000)
    expect(page.get_by_text("This job was cancelled")).to_be_visible()
    expect(page.get_by_role("link", name="Cancel job")).to_have_count(0)
    expect(page.locator("[data-progress-steps]")).to_have_text("Step 21 of 96")
    expect(page.locator(".checkpoint", has_text="Step 21")).to_be_visible(timeout=8000)
    expect(page.get_by_role("button", name="Make step 21 a model")).to_be_visible()
    assert page.evaluate("window.stillTheSamePage") is True
    page.screenshot(path=str(shots / "dashboard-job-cancelled.png"), full_page=True)
    assert console_errors == []


@pytest.mark.parametrize("width", [1280, 390])
def test_many_checkpoints_stay_compact(
    base_url: str, tiny_chat, acme, alice, artifact_store, page: Page, shots, width
):
    from tokenmill.finetuning.models import JobCheckpoint

    page.set_viewport_size({"width": width, "height": 900})
    job = running_job_with_metrics(acme, steps=100, total_steps=100)
    for epoch in range(1, 26):
        JobCheckpoint.objects.create(
            tenant=acme,
            job=job,
            step_number=epoch * 4,
            epoch=epoch,
            metrics={"train_loss_mean": 1.0 + 1 / epoch, "valid_loss": 1.1 + 1 / epoch},
            fine_tuned_model_checkpoint=f"ft:tiny-chat:acme:support:abcdefgh:ckpt-step-{epoch * 4}",
            artifact_key=f"jobs/x/checkpoints/step-{epoch * 4}",
        )
    log_in(page, "alice@example.com")

    page.goto(f"/fine-tuning/{job.public_id}/")

    expect(page.locator(".checkpoint")).to_have_count(25)
    page.screenshot(path=str(shots / f"dashboard-job-checkpoints-{width}.png"), full_page=True)
    box = page.locator("[data-live=checkpoints]").bounding_box()
    assert box["height"] < 500, box
    page_height = page.evaluate("document.scrollingElement.scrollHeight")
    assert page_height < (2200 if width == 1280 else 3600), page_height
    assert_no_sideways_scroll(page)


# The elements that reach past the window's right edge, outside any box that scrolls.
OVERFLOWING = """() => {
  const width = window.innerWidth;
  const clipped = (el) => {
    for (let up = el.parentElement; up; up = up.parentElement) {
      const style = getComputedStyle(up);
      if (style.overflowX !== "visible" && up !== document.body && up !== document.documentElement) return true;
    }
    return false;
  };
  return [...document.querySelectorAll("body *")]
    .filter((el) => el.getBoundingClientRect().right > width + 1 && !clipped(el))
    .map((el) => el.tagName.toLowerCase() + (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\\s+/).join(".") : ""))
    .slice(0, 10);
}"""


def assert_no_sideways_scroll(page: Page) -> None:
    """Nothing makes the page scroll sideways (tables may scroll inside their own box)."""
    scroll_width, inner_width = page.evaluate(
        "[document.scrollingElement.scrollWidth, window.innerWidth]"
    )
    assert scroll_width <= inner_width, (scroll_width, inner_width, page.evaluate(OVERFLOWING))


def running_job_with_metrics(tenant, *, steps: int, total_steps: int):
    """A running job whose trainer reported `steps` steps, and the validation loss each 16."""
    from django.utils import timezone

    from tests.finetuning.conftest import make_training_file
    from tokenmill.catalog.models import BaseModel
    from tokenmill.finetuning.models import FineTuningJob

    training = make_training_file(tenant)
    validation = make_training_file(tenant)
    started = timezone.now() - timedelta(seconds=steps)
    job = FineTuningJob.objects.create(  # not job_create: no task may run it for real here
        tenant=tenant,
        base_model=BaseModel.objects.get(model_id="tiny-chat"),
        training_file=training,
        validation_file=validation,
        suffix="support",
        seed=42,
        status="running",
        hyperparameters={"n_epochs": 6},
        resolved_hyperparameters={
            "n_epochs": 6,
            "batch_size": 4,
            "learning_rate_multiplier": 1.0,
            "learning_rate": 0.005,
            "lora_r": 16,
            "lora_alpha": 32,
        },
        n_train_examples=64,
        estimated_trained_tokens=41_472,
        created_at=started - timedelta(seconds=5),
        started_at=started,
        dispatched_at=started,
        estimated_finish=timezone.now() + timedelta(seconds=total_steps - steps),
    )
    for step in range(1, steps + 1):
        record_step(job, step, total_steps=total_steps, at=started + timedelta(seconds=step))
    return job


def record_step(job, step: int, *, total_steps: int, at=None) -> None:
    from django.utils import timezone

    from tokenmill.finetuning import reports

    at = at or timezone.now()
    loss = round(0.5 + 2.3 * math.exp(-step / 12) + 0.06 * math.sin(step * 1.7), 4)
    if step == 49:
        loss = 0.62
    data = {
        "kind": "step",
        "step": step,
        "total_steps": total_steps,
        "epoch": round(step / 16, 4),
        "train_loss": loss,
        "tokens_per_second": 2150.0 + step,
        "eta_seconds": float(total_steps - step),
    }
    reports.record(
        {
            "job_id": job.public_id,
            "attempt": job.attempt,
            "seq": 2 * step,
            "kind": "metrics",
            "at": at.timestamp(),
            "payload": {"data": data},
        }
    )
    if step % 16 == 0:
        valid = {"kind": "epoch", "epoch": step // 16, "step": step, "valid_loss": loss + 0.12}
        reports.record(
            {
                "job_id": job.public_id,
                "attempt": job.attempt,
                "seq": 2 * step + 1,
                "kind": "metrics",
                "at": at.timestamp() + 0.5,
                "payload": {"data": valid},
            }
        )
