"""Metering writes: the periodic run that sweeps lost requests and fills the ledger."""

from tokenmill.metering import events, ledger, limits


def metering_run() -> dict[str, int]:
    swept = events.inflight_sweep()
    done = ledger.aggregate()
    old = limits.forget_expired()
    return {"swept": swept, "events": done.events, "counted": done.counted, "counters": old}


def training_event_emit(*, job) -> None:
    """A job succeeded: its trained tokens, once per job (the event id is the job's)."""
    events.event_emit(
        events.Event(
            event_id=f"train_{job.public_id}",
            tenant_id=job.tenant_id,
            key_public_id="",
            model=job.base_model.model_id,
            fine_tuned_model=job.fine_tuned_model or "",
            kind="training",
            prompt_tokens=int(job.trained_tokens or 0),
            completion_tokens=0,
            latency_ms=0,
            status="succeeded",
            at=events.now_iso(),
        )
    )
