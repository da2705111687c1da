"""Rate-limit buckets in Redis, taken by one atomic Lua script; local fallback while it is down."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Sequence
from typing import cast

from redis.exceptions import NoScriptError

from chatgate.gateway.ratelimit.backend import Charge, LocalBackend, Outcome
from chatgate.redislink import FAILURES, RedisLink

# One call runs a batch of operations in order, each all or none, the whole batch atomically.
# KEYS are the distinct bucket hashes {tokens, ts} of the batch. ARGV[1] is one string of
# space-separated words (one string, not many arguments, because encoding and parsing each
# argument is what costs the client most): per operation, 't' (take), 'a' (adjust) or 'c' (cap),
# the number of buckets n, then n triples (index into KEYS, capacity, cost). A take checks every
# bucket first and takes from all only if all have room (a cost above the capacity needs a full
# bucket). An adjust takes its cost (negative: gives back, up to the capacity). A cap lowers the
# level to its cost if it is above (what a replica used locally while Redis was away). Time is
# Redis's own (TIME, in ms), so the replicas' clocks never matter. Each bucket is read once and
# written once per batch; its key expires when the bucket would be full again, since a missing
# bucket reads as full. The reply is one string: per take, 1|0 and then each bucket's level
# (after the take if taken).
SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local a = {}
for w in string.gmatch(ARGV[1], '%S+') do a[#a + 1] = w end
local level, cap, dirty = {}, {}, {}
local function refill(k, c)
  local l = level[k]
  if l == nil then
    local h = redis.call('HMGET', KEYS[k], 'tokens', 'ts')
    if h[1] then
      l = tonumber(h[1]) + (now - tonumber(h[2])) * c / 60000
    else
      l = c
    end
  end
  if l > c then l = c end
  level[k] = l
  cap[k] = c
  return l
end
local out = {}
local i = 1
while i <= #a do
  local kind = a[i]
  local take = kind == 't'
  local n = tonumber(a[i + 1])
  i = i + 2
  local last = i + 3 * (n - 1)
  local ok = 1
  for j = i, last, 3 do
    local c = tonumber(a[j + 1])
    local l = refill(tonumber(a[j]), c)
    if take and l < math.min(tonumber(a[j + 2]), c) then ok = 0 end
  end
  if ok == 1 then
    for j = i, last, 3 do
      local k = tonumber(a[j])
      local cost = tonumber(a[j + 2])
      if kind == 'c' then
        if level[k] > cost then
          level[k] = cost
          dirty[k] = true
        end
      elseif cost ~= 0 then
        level[k] = math.min(cap[k], level[k] - cost)
        dirty[k] = true
      end
    end
  end
  if take then
    out[#out + 1] = ok
    for j = i, last, 3 do
      out[#out + 1] = string.format('%.17g', level[tonumber(a[j])])
    end
  end
  i = last + 3
end
local stamp = string.format('%.17g', now)
for k in pairs(dirty) do
  local ttl = math.ceil((cap[k] - level[k]) * 60000 / cap[k])
  if ttl > 0 then
    redis.call('HSET', KEYS[k], 'tokens', string.format('%.17g', level[k]), 'ts', stamp)
    redis.call('PEXPIRE', KEYS[k], ttl + 1000)
  else
    redis.call('DEL', KEYS[k])
  end
end
return table.concat(out, ' ')
"""
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()

# An operation waiting for the next batch: take (else adjust), its charges, who waits for it.
_Op = tuple[bool, Sequence[Charge], "asyncio.Future[Outcome] | None"]
_CAP = "c"


class RedisBackend:
    """Buckets shared by every replica through Redis, exact however many replicas there are.

    Operations are sent as one EVALSHA of one script (loaded again on NOSCRIPT, e.g. after a Redis
    restart). While one call is in flight, the operations that arrive meanwhile queue up and go
    together in the next call: one round trip per request when idle, far fewer under load, and
    one connection. ``adjust`` needs no answer: it waits up to ``ADJUST_DELAY`` for a take to
    ride with, so reconciling usually costs no call of its own (this replica's takes always see
    its earlier adjusts; other replicas, within ``ADJUST_DELAY``).
    Keys are ``prefix + bucket``; the default prefix is a hash tag, so on Redis Cluster all
    buckets share one slot, as a multi-key script needs.

    If Redis fails (down, unreachable, slower than ``timeout``), operations are served by a
    ``LocalBackend`` whose capacities are divided by ``replicas``, so the replicas together stay
    near the configured limit; ``degraded`` is then True, and the ``RedisLink`` logs one warning
    and probes Redis every ``retry_after`` seconds without costing requests anything. The local
    buckets start from this replica's share of what Redis last said was left (a mirror of the
    levels its replies carry), not full: an outage is no fresh minute. When Redis answers again,
    each bucket this replica used meanwhile caps Redis's at what the local one says is left (times
    the replicas), so Redis — which refilled all along, or restarted empty — is not refilled
    beyond the window either; then one more line is logged and Redis is used again.
    """

    MAX_BATCH = 256  # operations per call, so one script never holds Redis up for long
    ADJUST_DELAY = 0.05  # seconds an adjust may wait for a take to ride with

    def __init__(
        self,
        url: str,
        replicas: int = 1,
        *,
        prefix: str = "{chatgate:rl}:",
        timeout: float = 0.5,
        retry_after: float = 1.0,
    ) -> None:
        if replicas < 1:
            raise ValueError("replicas must be at least 1")
        self.replicas = replicas
        self.prefix = prefix
        # A dead Redis must cost the request path microseconds, not seconds (see RedisLink).
        self._link = RedisLink(
            url,
            "rate limits",
            f"enforced locally, divided by {replicas} replica(s)",
            timeout=timeout,
            retry_after=retry_after,
        )
        self._link.on_down.append(self._go_local)
        self._link.rejoin.append(self._cap_from_local)
        self._client = self._link.client
        self.fallback = LocalBackend(1.0 / replicas)  # replaced by a fresh one at each outage
        self._seen = LocalBackend()  # the levels Redis last reported, refilling since
        self._queue: list[_Op] = []
        self._sender: asyncio.Task[None] | None = None
        self._kick: asyncio.TimerHandle | None = None

    @property
    def degraded(self) -> bool:
        return self._link.down

    async def take(self, charges: Sequence[Charge]) -> Outcome:
        if self._link.down:
            return self.fallback.take_now(charges)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._enqueue((True, charges, future))
        return await future

    async def adjust(self, charges: Sequence[Charge]) -> None:
        if self._link.down:
            self.fallback.adjust_now(charges)
            return
        # No call of its own: it rides with the next take, or goes within ADJUST_DELAY.
        self._queue.append((False, charges, None))
        if self._sender is None and self._kick is None:
            self._kick = asyncio.get_running_loop().call_later(self.ADJUST_DELAY, self._flush)

    async def close(self) -> None:
        self._flush()
        if self._sender is not None:
            await asyncio.shield(self._sender)  # what is queued still goes (each call is bounded)
        await self._link.close()

    def _enqueue(self, op: _Op) -> None:
        self._queue.append(op)
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_all())

    def _flush(self) -> None:
        if self._kick is not None:
            self._kick.cancel()
            self._kick = None
        if self._queue and self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_all())

    async def _send_all(self) -> None:
        if self._kick is not None:  # whatever adjusts wait go now
            self._kick.cancel()
            self._kick = None
        try:
            while self._queue:
                batch = self._queue[: self.MAX_BATCH]
                del self._queue[: self.MAX_BATCH]
                if self._link.down:
                    self._locally(batch)
                    continue
                try:
                    reply = await self._call(batch)
                except FAILURES as exc:
                    self._link.failed(exc, "taking tokens")
                    self._locally(batch)
                    continue
                except BaseException:
                    self._locally(batch)  # nobody waits forever (e.g. cancelled at shutdown)
                    raise
                self._settle(batch, reply)
        finally:
            self._sender = None
            if self._queue:  # only after an unexpected error; serve what is left
                batch, self._queue = self._queue, []
                self._locally(batch)

    async def _call(self, batch: list[_Op], kind: str | None = None) -> list[bytes]:
        """One script call for ``batch`` (each a take or an adjust, or all of ``kind``)."""
        keys: dict[str, int] = {}
        words: list[str] = []
        for take, charges, _ in batch:
            words.append(kind or ("t" if take else "a"))
            words.append(str(len(charges)))
            for name, capacity, cost in charges:
                index = keys.get(name)
                if index is None:
                    index = keys[name] = len(keys) + 1
                words.append(str(index))
                words.append(str(capacity))
                words.append(str(cost))
        args = [self.prefix + name for name in keys]
        args.append(" ".join(words))
        try:
            reply = await self._evalsha(len(keys), args)
        except NoScriptError:
            await self._client.script_load(SCRIPT)
            reply = await self._evalsha(len(keys), args)
        return reply.split()

    async def _evalsha(self, numkeys: int, args: list[str]) -> bytes:
        # redis.asyncio's evalsha is typed for the sync client too; here it is always awaitable.
        reply = self._client.evalsha(SCRIPT_SHA, numkeys, *args)
        return await cast("Awaitable[bytes]", reply)

    def _settle(self, batch: list[_Op], reply: list[bytes]) -> None:
        at = 0
        seen = self._seen
        for take, charges, future in batch:
            if not take:
                continue
            end = at + 1 + len(charges)
            levels = [float(x) for x in reply[at + 1 : end]]
            for charge, level in zip(charges, levels, strict=True):
                seen.put(charge.bucket, charge.capacity, level)
            if future is not None and not future.done():
                future.set_result(Outcome(reply[at] == b"1", levels))
            at = end

    async def _cap_from_local(self) -> None:
        """Lower Redis's buckets to what the local ones used meanwhile leave (times replicas)."""
        caps: list[_Op] = [
            (False, [Charge(bucket, capacity, level * self.replicas)], None)
            for bucket, capacity, level in self.fallback.levels()
        ]
        for start in range(0, len(caps), self.MAX_BATCH):
            await self._call(caps[start : start + self.MAX_BATCH], _CAP)

    def _locally(self, batch: list[_Op]) -> None:
        for take, charges, future in batch:
            if not take:
                self.fallback.adjust_now(charges)
            elif future is not None and not future.done():
                future.set_result(self.fallback.take_now(charges))

    def _go_local(self) -> None:
        """An outage begins: local buckets, from this replica's share of what Redis had left."""
        self.fallback = fallback = LocalBackend(1.0 / self.replicas)
        for bucket, capacity, level in self._seen.levels():
            fallback.put(bucket, capacity, level / self.replicas)
