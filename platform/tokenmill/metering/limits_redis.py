"""Reservations in Redis: one Lua script to admit, one to settle (one round trip each).

Both scripts exist for the event loop (redis.asyncio, one pooled client per loop) and
for threads (the platform API's request limit, the sweeper).
"""

from django.conf import settings

from tokenmill.metering import redis_client

INFLIGHT_HASH = "metering:inflight"
INFLIGHT_STARTED = "metering:inflight:started"

# KEYS: the counters, then the in-flight hash and its start-time sorted set.
# ARGV: 1 to write the in-flight record (else 0), the number of counters n, then per
# counter its cap (-1: none), cost and ttl; then the request id, its in-flight payload
# and its start time. Returns {refused counter (1-based, 0: none), each counter's value}.
RESERVE = """
local n = tonumber(ARGV[2])
local used = {}
local refused = 0
for i = 1, n do
  local value = tonumber(redis.call('GET', KEYS[i]) or '0')
  local cap = tonumber(ARGV[3 * i])
  if refused == 0 and cap >= 0 and value + tonumber(ARGV[3 * i + 1]) > cap then
    refused = i
  end
  used[i] = value
end
if refused == 0 then
  for i = 1, n do
    used[i] = redis.call('INCRBY', KEYS[i], ARGV[3 * i + 1])
    redis.call('EXPIRE', KEYS[i], ARGV[3 * i + 2])
  end
  if ARGV[1] == '1' then
    local base = 3 * n + 3
    redis.call('HSET', KEYS[n + 1], ARGV[base], ARGV[base + 1])
    redis.call('ZADD', KEYS[n + 2], ARGV[base + 2], ARGV[base])
  end
end
local reply = {refused}
for i = 1, n do reply[i + 1] = used[i] end
return reply
"""

# KEYS: the counters to adjust, then the event stream, the in-flight hash and sorted set.
# ARGV: the number of counters m, each one's delta, the event ('' for none), the request id.
# A counter whose window expired is not recreated (it would live forever, without a TTL).
SETTLE = """
local m = tonumber(ARGV[1])
for i = 1, m do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('INCRBY', KEYS[i], ARGV[i + 1])
  end
end
if ARGV[m + 2] ~= '' then
  redis.call('XADD', KEYS[m + 1], '*', 'event', ARGV[m + 2])
end
redis.call('HDEL', KEYS[m + 2], ARGV[m + 3])
redis.call('ZREM', KEYS[m + 3], ARGV[m + 3])
return m
"""


def _reserve_call(plan, inflight) -> tuple[list, list]:
    keys = [key for _, _, key in plan]
    args = [1 if inflight is not None else 0, len(plan)]
    for scope, counter, _ in plan:
        args += [-1 if counter.cap is None else counter.cap, counter.cost, scope.ttl]
    keys += [INFLIGHT_HASH, INFLIGHT_STARTED]
    if inflight is not None:
        args += [inflight.request_id, inflight.payload, inflight.started]
    return keys, args


def _settle_call(deltas, settlement) -> tuple[list, list]:
    keys = [key for key, _ in deltas]
    keys += [settings.METERING_STREAM, INFLIGHT_HASH, INFLIGHT_STARTED]
    args = [len(deltas), *(delta for _, delta in deltas)]
    args += [settlement.event or b"", settlement.request_id]
    return keys, args


def _reply(reply) -> tuple[int, list[int]]:
    values = [int(value) for value in reply]
    return values[0], values[1:]


def reserve(plan, inflight) -> tuple[int, list[int]]:
    keys, args = _reserve_call(plan, inflight)
    return _reply(redis_client.script(RESERVE)(keys=keys, args=args))


async def areserve(plan, inflight) -> tuple[int, list[int]]:
    keys, args = _reserve_call(plan, inflight)
    return _reply(await redis_client.async_script(RESERVE)(keys=keys, args=args))


def settle(deltas, settlement) -> None:
    keys, args = _settle_call(deltas, settlement)
    redis_client.script(SETTLE)(keys=keys, args=args)


async def asettle(deltas, settlement) -> None:
    keys, args = _settle_call(deltas, settlement)
    await redis_client.async_script(SETTLE)(keys=keys, args=args)
