"""Reading the current minute's counters (metering.windows) on both stores: the figures
equal what admission reserved and settled, and reading them takes nothing."""

import time

import pytest

from tokenmill.metering import limits, windows
from tokenmill.metering.limits import Scope


def rate(name: str, requests: int | None, tokens: int | None) -> Scope:
    return limits.rate_scope(name, requests=requests, tokens=tokens)


def reserve(scopes: list[Scope], *, tokens: int = 0) -> limits.Verdict:
    return limits.reserve([scope.with_costs({"tokens": tokens}) for scope in scopes])


def settle(verdict: limits.Verdict, *, tokens: int) -> None:
    nothing_to_record = limits.Settlement("req-windows", None)
    limits.settle(verdict.reservation, used={"tokens": tokens}, settlement=nothing_to_record)


def fresh_minute() -> None:
    """Start well inside a minute, so the reservations and the read share one window."""
    into = time.time() % limits.WINDOW_SECONDS
    if into > limits.WINDOW_SECONDS - 10:
        time.sleep(limits.WINDOW_SECONDS - into + 0.05)


@pytest.fixture
def scopes(acme) -> list[Scope]:
    fresh_minute()  # a scope carries its minute: build them inside the one the test uses
    return [rate("key:41", 10, 1_000), rate(f"org:{acme.pk}", 600, 100_000)]


def test_the_read_equals_what_admission_reserved_and_settled(store, scopes):
    fresh_minute()
    for _ in range(3):
        verdict = reserve(scopes, tokens=100)
        settle(verdict, tokens=40)

    key, org = windows.current_usage(scopes)

    assert (key.requests_used, key.tokens_used) == (3, 120)
    assert (key.requests_left, key.tokens_left) == (7, 880)
    assert (org.requests_left, org.tokens_left) == (597, 99_880)
    assert key.limit is scopes[0] and org.limit is scopes[1]
    assert 0 < key.resets_in <= limits.WINDOW_SECONDS
    assert 1 <= key.reset_seconds <= limits.WINDOW_SECONDS
    # The next admission agrees: its headers give the tightest scope's remainder.
    verdict = reserve(scopes, tokens=0)
    assert verdict.headers["x-ratelimit-remaining-requests"] == "6"
    assert verdict.headers["x-ratelimit-remaining-tokens"] == "880"
    assert windows.current_usage(scopes)[0].requests_left == 6


def test_reading_takes_nothing(store, scopes):
    fresh_minute()
    reserve(scopes, tokens=5)
    for _ in range(3):
        windows.current_usage(scopes)
    assert [u.requests_used for u in windows.current_usage(scopes)] == [1, 1]
    assert [u.tokens_used for u in windows.current_usage(scopes)] == [5, 5]


def test_a_refused_request_takes_nothing_and_the_read_says_none_is_left(store, acme):
    fresh_minute()
    scope = [rate("key:42", 2, None)]
    outcomes = [reserve(scope).reservation is not None for _ in range(3)]
    assert outcomes == [True, True, False]

    (usage,) = windows.current_usage(scope)
    assert (usage.requests_used, usage.requests_left) == (2, 0)
    assert usage.tokens_left is None  # no token limit on this key


def test_an_unused_scope_and_the_next_minute_have_everything_left(store, scopes):
    fresh_minute()
    reserve(scopes[:1], tokens=10)

    key, org = windows.current_usage(scopes)
    assert (org.requests_used, org.tokens_used, org.requests_left) == (0, 0, 600)
    assert key.requests_used == 1
    later = windows.current_usage(scopes, now=time.time() + limits.WINDOW_SECONDS)
    assert [(u.requests_used, u.tokens_used) for u in later] == [(0, 0), (0, 0)]


def test_no_scopes_no_read(store):
    assert windows.current_usage([]) == []
