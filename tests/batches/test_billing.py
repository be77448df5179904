"""Batch lines go through budgets and credits at the discounted batch price."""

import json

import pytest

from tests.batches.conftest import chat_line
from tests.metering.test_billing_admission import credit_of, spend_hook  # noqa: F401
from tokenmill.billing import admission, pricing

pytestmark = pytest.mark.django_db(transaction=True)
PRICES = pricing.Prices(input=1000, output=3000, training=0)


@pytest.fixture
def asking_hook(spend_hook, monkeypatch):  # noqa: F811
    """Billing's hook, remembering what each admission asked the price of, too."""
    spend_hook.asked = []
    cost = admission.SpendHook.cost

    def recording(self, **kwargs):
        self.asked.append(kwargs)
        return cost(self, **kwargs)

    monkeypatch.setattr(admission.SpendHook, "cost", recording)
    return spend_hook


def test_admission_reserves_the_discounted_price_and_refuses_lines_past_the_budget(
    asking_hook,
    backend,
    upload_batch_file,
    create_batch,
    api,
    alice_key,
    acme,
    settings,
):
    settings.BATCH_CONCURRENCY = 1
    rows = [chat_line(f"r{i}", max_tokens=16) for i in range(8)]
    credit_of(acme, 150_000)  # enough for a few lines at these prices, not for eight
    body = create_batch(upload_batch_file(rows)).json()

    assert body["status"] == "completed"
    counts = body["request_counts"]
    assert counts["completed"] >= 1 and counts["failed"] >= 1
    assert counts["completed"] + counts["failed"] == 8
    errors = [
        json.loads(line)
        for line in b"".join(
            api(alice_key).get(f"/v1/files/{body['error_file_id']}/content").streaming_content
        ).splitlines()
    ]
    assert {line["response"]["status_code"] for line in errors} == {429}
    assert {line["response"]["body"]["error"]["code"] for line in errors} == {"insufficient_quota"}
    # Each admission reserved the batch price of its worst case: half the live one.
    asked = asking_hook.asked[0]
    assert asked["kind"] == "batch" and asked["completion_tokens"] == 16
    live = pricing.micros_of(
        PRICES, kind="chat", prompt_tokens=asked["prompt_tokens"], completion_tokens=16
    )
    assert asking_hook.reserved[0] == -(-live // 2)
