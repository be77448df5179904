"""What admission asks of the limits, for the gateway and for every other API route."""

from tokenmill.metering import limits
from tokenmill.metering.limits import Verdict

UNIT = {"requests": "requests per minute (RPM)", "tokens": "tokens per minute (TPM)"}
QUOTA_MESSAGE = "You exceeded your current quota, please check your plan and billing details."


def caller_limits(
    *,
    tenant_id: int,
    key_id: int | None,
    key_requests: int | None,
    key_tokens: int | None,
    org_requests: int,
    org_tokens: int,
    tokens: int = 0,
) -> list[limits.Scope]:
    """The caller's rate scopes this minute, to take one request and `tokens`."""
    return limits.limits_for(
        key_id=key_id,
        key_requests=key_requests,
        key_tokens=key_tokens,
        tenant_id=tenant_id,
        org_requests=org_requests,
        org_tokens=org_tokens,
        tokens=tokens,
    )


def refusal_message(verdict: Verdict, *, requested: int) -> str:
    scope = verdict.refused_scope
    if scope.quota:
        return QUOTA_MESSAGE
    dimension = verdict.refused
    whose = "this API key" if scope.name.startswith("key:") else "your organization"
    return (
        f"Rate limit reached for {UNIT[dimension]} on {whose}: Limit {scope.cap(dimension)}, "
        f"Requested {requested}. Please try again in {verdict.retry_after}s."
    )


def refusal_headers(verdict: Verdict) -> dict[str, str]:
    if verdict.refused_scope.quota:  # waiting does not help: no retry-after
        return dict(verdict.headers)
    return {**verdict.headers, "retry-after": str(verdict.retry_after)}


def refusal_code(verdict: Verdict) -> tuple[str, str]:
    """OpenAI's (code, type) of the refusal."""
    if verdict.refused_scope.quota:
        return "insufficient_quota", "insufficient_quota"
    return "rate_limit_exceeded", verdict.refused
