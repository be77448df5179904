"""A settle that fails does not fail the served request, and loses no usage."""

from datetime import timedelta

from tests.gateway.helpers import chat, wait_for
from tests.metering.helpers import ledger_totals
from tokenmill.metering import events, limits


def test_a_failed_settle_leaves_the_request_for_the_sweeper(
    store, backend, call, acme, alice_key, monkeypatch
):
    emitted = []

    async def broken(reservation, **kwargs):
        emitted.append(kwargs["settlement"])
        raise ConnectionError("the metering store went away")

    real_settle = limits.asettle
    monkeypatch.setattr(limits, "asettle", broken)
    response = call(alice_key, "/v1/chat/completions", chat())
    assert response.status_code == 200  # the caller was served all the same
    wait_for(lambda: emitted, what="the settle attempt")
    monkeypatch.setattr(limits, "asettle", real_settle)
    assert events.inflight_sweep(older_than=timedelta(0)) == 1
    assert ledger_totals(acme)["requests"] == 1
