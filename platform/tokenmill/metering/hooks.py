"""Extra reservation scopes at admission: the seam budgets and prepaid credits plug into.

Admission reserves the caller's rate limits (tokenmill.metering.gate). An app that
also enforces money (billing) registers one `AdmissionHook`, usually in its
AppConfig.ready():

    from tokenmill.metering import hooks, limits

    class SpendHook:
        async def scopes(self, *, tenant_id, key_id, model):
            # Cheap: from a per-process memo or the cache, never a query per request.
            window, reset_at, ttl = limits.month_window()
            cap = remaining_budget_microdollars(tenant_id)  # what the org may still spend
            return [
                limits.Scope(
                    name=f"spend:org:{tenant_id}",
                    window=window,  # "202612"
                    reset_at=reset_at,
                    ttl=ttl,
                    counters=(limits.Counter("microdollars", cap),),
                    quota=True,
                )
            ]

        def cost(self, *, tenant_id, model, prompt_tokens, completion_tokens, kind="chat"):
            return {"microdollars": price(tenant_id, model, prompt_tokens, completion_tokens)}

    hooks.register(SpendHook())

At admission the hook's scopes are reserved in the same atomic step as the rate
limits, each counter's cost taken from `cost(the organization, model, prompt tokens,
the most completion tokens the request may produce)` by dimension. When the request
settles, its counters are settled to `cost(..., the prompt and completion tokens served)`;
a request whose gateway died is settled by the sweeper to the usage last recorded.
A refused `quota` scope is a 429 `insufficient_quota` (no retry-after: waiting does
not help). Costs are integers (micro-units), never floats.
"""

from typing import Protocol

from tokenmill.metering.limits import Scope


class AdmissionHook(Protocol):
    async def scopes(self, *, tenant_id: int, key_id: int | None, model: str) -> list[Scope]: ...

    def cost(
        self,
        *,
        tenant_id: int,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        kind: str = "chat",
    ) -> dict[str, int]: ...


_hook: AdmissionHook | None = None


def register(hook: AdmissionHook | None) -> AdmissionHook | None:
    """Make `hook` the one admission asks (None: none); returns the one it replaces."""
    global _hook
    previous, _hook = _hook, hook
    return previous


def current() -> AdmissionHook | None:
    return _hook


def used(
    *, tenant_id: int, model: str, prompt_tokens: int, completion_tokens: int, kind: str = "chat"
) -> dict[str, int]:
    """What a request used, per dimension: its tokens, and the hook's costs (a `batch`
    line's at the batch price)."""
    found = {"tokens": prompt_tokens + completion_tokens}
    if _hook is not None:
        found.update(
            _hook.cost(
                tenant_id=tenant_id,
                model=model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                kind=kind,
            )
        )
    return found
