"""What admission asks of the limits, for the gateway and for every other API route."""

from tokenmill.metering import limits
from tokenmill.metering.limits import Verdict

UNIT = {"requests": "requests per minute (RPM)", "tokens": "tokens per minute (TPM)"}


def caller_limits(
    *,
    tenant_id: int,
    key_id: int | None,
    key_requests: int | None,
    key_tokens: int | None,
    org_requests: int,
    org_tokens: int,
) -> list[limits.Limit]:
    return limits.limits_for(
        key_id=key_id,
        key_requests=key_requests,
        key_tokens=key_tokens,
        tenant_id=tenant_id,
        org_requests=org_requests,
        org_tokens=org_tokens,
    )


def refusal_message(verdict: Verdict, *, requested: int) -> str:
    limit = verdict.refused_limit
    dimension = verdict.refused
    whose = "this API key" if limit.scope.startswith("key:") else "your organization"
    cap = limit.of(dimension)
    return (
        f"Rate limit reached for {UNIT[dimension]} on {whose}: Limit {cap}, "
        f"Requested {requested}. Please try again in {verdict.retry_after}s."
    )


def refusal_headers(verdict: Verdict) -> dict[str, str]:
    return {**verdict.headers, "retry-after": str(verdict.retry_after)}
