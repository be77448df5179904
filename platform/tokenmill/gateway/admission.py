"""The one seam where a request is admitted before it is forwarded, and settled after it ends.

`admit` runs after the request is authenticated, its model resolved and its prompt
counted, and before any byte goes to a model server; it may refuse (the next issue:
rate limits and budgets as one atomic reservation, 429 / 402). `settle` runs exactly
once per admitted request, when it has ended for any reason, with the usage the
caller was served: the model server's own counts, or for a stream the client cut, the
counts of what was delivered (vLLM's continuous usage stats).

Today `admit` admits everything and `settle` records nothing durable (a debug log).
"""

import logging
import time
from dataclasses import dataclass, field

from tokenmill.gateway.callers import Caller

logger = logging.getLogger("tokenmill.gateway")


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_body(cls, usage: dict | None) -> "Usage | None":
        if not isinstance(usage, dict):
            return None
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        return cls(prompt, completion, int(usage.get("total_tokens") or prompt + completion))


class Outcome:
    COMPLETED = "completed"  # the caller got the whole answer
    CUT = "cut"  # the caller went away mid-stream: usage is what was delivered
    FAILED = "failed"  # the model server failed or timed out after admission


@dataclass
class Admission:
    request_id: str
    caller: Caller
    endpoint: str
    model: str  # as the caller named it (a base model or an ft: model)
    base_model: str
    stream: bool
    # Our own count before forwarding: exact near the context limit, else an upper bound
    # (see tokens.py); None where this process has no tokenizer for the model.
    prompt_tokens: int | None
    max_tokens: int | None
    admitted_at: float = field(default_factory=time.monotonic)
    settled: bool = False


async def admit(admission: Admission) -> Admission:
    """Admit the request or raise GatewayError (429, 402) to refuse it."""
    return admission


async def settle(admission: Admission, usage: Usage, *, outcome: str) -> None:
    """Record the request's real usage. Called once per admitted request."""
    logger.debug(
        "settled %s %s %s: %s prompt + %s completion tokens (%s)",
        admission.request_id,
        admission.endpoint,
        admission.model,
        usage.prompt_tokens,
        usage.completion_tokens,
        outcome,
    )
