"""A ledger shared by several processes through Redis: atomic Lua scripts and leased reservations.

Every reservation is held under a **lease**: per account, a sorted set of reservation keys scored by
the time their lease ends, and a hash of what each one holds. Each script that touches an account first
returns the holdings of expired leases to it, in the same atomic step, so a process killed between
reserve and settle strands its reservation for at most ``lease_s`` seconds. A holder that is merely
slow and settles after its lease ended is still charged (the call was made), and counted in
:meth:`RedisLedger.overruns` since the returned room may have been given to another call.

The reservation record (state, amounts, accounts) lives in Redis too, so any process may settle or
release a key; it expires after ``record_ttl_s``, which bounds how long a key stays bound to its amounts.

Why hand-written: no maintained Python library offers multi-account, all-or-nothing reservations with
caps, sliding request windows and leases (``limits`` counts requests only).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from agentops.budgets._ledger import (
    Line,
    Reservation,
    _reservation,
    check_actual,
    check_key,
    check_lines,
    exceeded,
    key_reused,
    row,
    signature,
)
from agentops.errors import ConfigError

# Per line the scripts get four keys: account hash, request window, lease deadlines, lease holdings.
_PER_LINE = 4

_RECLAIM = """
local function neg(s) return string.format('%d', 0 - tonumber(s)) end  -- Redis refuses '-0'
local function reclaim(acct, lease, held, now)
  local expired = redis.call('ZRANGEBYSCORE', lease, '-inf', now)
  for _, k in ipairs(expired) do
    local v = redis.call('HGET', held, k)
    if v then
      local u, t = string.match(v, '^(%d+) (%d+)$')
      if redis.call('EXISTS', acct) == 1 then  -- a window that has itself expired has nothing to return
        redis.call('HINCRBY', acct, 'ru', neg(u))
        redis.call('HINCRBY', acct, 'rt', neg(t))
        redis.call('HINCRBY', acct, 'expired', 1)
      end
      redis.call('HDEL', held, k)
    end
  end
  if #expired > 0 then redis.call('ZREMRANGEBYSCORE', lease, '-inf', now) end
  return #expired
end
"""

_RESERVE_LUA = (
    _RECLAIM
    + """
-- KEYS[1] = reservation record; per line i: KEYS[4i-2..4i+1] = account, requests, leases, holdings
-- ARGV: now, record ttl, key, lease end, signature, record lines; per line 7 values:
--       usd, tokens, cap usd, cap tokens, cap requests, window, meta json
local now, ttl, key, lease_end = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local state = redis.call('HGET', KEYS[1], 's')
if state == 'R' or state == 'S' then
  local sig = redis.call('HGET', KEYS[1], 'sig')
  if sig ~= ARGV[5] then return {3, sig} end
  return {2, state}
end
local n = (#KEYS - 1) / 4
local L = {}
for i = 1, n do
  local a = 6 + (i - 1) * 7
  L[i] = {u = tonumber(ARGV[a + 1]), t = tonumber(ARGV[a + 2]), cu = tonumber(ARGV[a + 3]),
          ct = tonumber(ARGV[a + 4]), cr = tonumber(ARGV[a + 5]), w = tonumber(ARGV[a + 6]),
          meta = ARGV[a + 7], acct = KEYS[4 * i - 2], rq = KEYS[4 * i - 1], lease = KEYS[4 * i],
          held = KEYS[4 * i + 1]}
end
for i, l in ipairs(L) do
  reclaim(l.acct, l.lease, l.held, now)
  local v = redis.call('HMGET', l.acct, 'su', 'ru', 'st', 'rt')
  local su, ru = tonumber(v[1] or '0'), tonumber(v[2] or '0')
  local st, rt = tonumber(v[3] or '0'), tonumber(v[4] or '0')
  if l.cu >= 0 and su + ru + l.u > l.cu then return {0, i, 'usd', su, ru, l.u, l.cu} end
  if l.ct >= 0 and st + rt + l.t > l.ct then return {0, i, 'tokens', st, rt, l.t, l.ct} end
  if l.cr >= 0 then
    redis.call('ZREMRANGEBYSCORE', l.rq, '-inf', now - l.w)
    local c = redis.call('ZCARD', l.rq)
    if c + 1 > l.cr then return {0, i, 'requests', c, 0, 1, l.cr} end
  end
end
for i, l in ipairs(L) do
  local u, t = string.format('%d', l.u), string.format('%d', l.t)
  redis.call('HINCRBY', l.acct, 'ru', u)
  redis.call('HINCRBY', l.acct, 'rt', t)
  local calls = redis.call('HINCRBY', l.acct, 'n', 1)
  redis.call('HSETNX', l.acct, 'meta', l.meta)
  redis.call('ZADD', l.lease, lease_end, key)
  redis.call('HSET', l.held, key, u .. ' ' .. t)
  if l.w > 0 and l.cr < 0 then  -- a calendar window: its keys outlive the window and any lease in it
    local keep = math.ceil(math.max(l.w * 2, lease_end - now) + 60)
    for _, k in ipairs({l.acct, l.lease, l.held}) do redis.call('EXPIRE', k, keep) end
  end
  if l.cr >= 0 then
    redis.call('ZADD', l.rq, now, key .. ':' .. calls)  -- every attempt is a request, retries included
    redis.call('EXPIRE', l.rq, math.ceil(l.w + 60))
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 's', 'R', 'sig', ARGV[5], 'lines', ARGV[6])
redis.call('EXPIRE', KEYS[1], ttl)
return {1}
"""
)

_FINISH_LUA = (
    _RECLAIM
    + """
-- KEYS[1] = reservation record, KEYS[2] = overrun counter; per line: account, leases, holdings
-- ARGV: mode ('S' settle / 'X' release), record lines as read, actual usd, actual tokens, now
if redis.call('HGET', KEYS[1], 's') ~= 'R' then return 0 end
if redis.call('HGET', KEYS[1], 'lines') ~= ARGV[2] then return -1 end
local over = 0
local n = (#KEYS - 2) / 3
for i = 1, n do
  local acct, lease, held = KEYS[3 * i], KEYS[3 * i + 1], KEYS[3 * i + 2]
  local key = ARGV[6]
  reclaim(acct, lease, held, tonumber(ARGV[5]))
  local v = redis.call('HGET', held, key)
  local live = redis.call('EXISTS', acct) == 1  -- an expired window takes no late charges
  if v then
    redis.call('HDEL', held, key)
    redis.call('ZREM', lease, key)
    local u, t = string.match(v, '^(%d+) (%d+)$')
    if live then
      redis.call('HINCRBY', acct, 'ru', neg(u))
      redis.call('HINCRBY', acct, 'rt', neg(t))
    end
    if ARGV[1] == 'S' and (tonumber(ARGV[3]) > tonumber(u) or tonumber(ARGV[4]) > tonumber(t)) then over = 1 end
  elseif ARGV[1] == 'S' and live then
    over = 1  -- settled after its lease ended: the room it held was already given back
  end
  if ARGV[1] == 'S' and live then
    redis.call('HINCRBY', acct, 'su', ARGV[3])
    redis.call('HINCRBY', acct, 'st', ARGV[4])
  end
end
redis.call('HSET', KEYS[1], 's', ARGV[1])
if over == 1 then redis.call('INCR', KEYS[2]) end
return 1
"""
)

_SWEEP_LUA = (
    _RECLAIM
    + """
-- KEYS = account, leases, holdings; ARGV[1] = now
return reclaim(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]))
"""
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisLedger:
    """A ledger shared by several processes or replicas through Redis (atomic Lua scripts).

    Each reserve checks and books every line in one script, so it is atomic across processes; settle
    and release are one script each and idempotent per key. Keys share the hash tag ``{prefix}`` so the
    scripts also work on Redis Cluster. Thread-safe (the ``redis`` client pools connections).

    Args:
        client: a ``redis.Redis`` client (e.g. ``redis.Redis.from_url("redis://127.0.0.1:6379/0")``).
        prefix: key namespace (one per application or environment).
        lease_s: how long a reservation is held for a holder that never settles (a crashed process);
            set it above your provider's request timeout.
        record_ttl_s: how long a reservation record (the idempotency key and its amounts) is kept.
        clock: time source in seconds for leases and request windows; hosts sharing a ledger need
            synchronised clocks (NTP), with skew far below ``lease_s``.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "agentops",
        lease_s: float = 900.0,
        record_ttl_s: int = 86_400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ConfigError(f"invalid Redis key prefix {prefix!r}: a non-empty string without braces")
        if isinstance(lease_s, bool) or not isinstance(lease_s, (int, float)) or not 0 < lease_s < 10**7:
            raise ConfigError(f"lease_s must be a number of seconds > 0, got {lease_s!r}; e.g. lease_s=900")
        if isinstance(record_ttl_s, bool) or not isinstance(record_ttl_s, int) or record_ttl_s <= lease_s:
            raise ConfigError(
                f"record_ttl_s must be a whole number of seconds above lease_s ({lease_s:g}), got {record_ttl_s!r}"
            )
        self.client = client
        self.prefix = prefix
        self.lease_s = float(lease_s)
        self.ttl = record_ttl_s
        self.clock = clock
        self._reserve = client.register_script(_RESERVE_LUA)
        self._finish = client.register_script(_FINISH_LUA)
        self._sweep = client.register_script(_SWEEP_LUA)
        self._held: OrderedDict[str, str] = OrderedDict()  # keys reserved here -> their record lines
        self._lock = threading.Lock()

    def _k(self, *parts: str) -> str:
        return "{" + self.prefix + "}:" + ":".join(parts)

    def reserve(self, key: str, lines: Sequence[Line]) -> Reservation:
        """Reserve every line or none (atomically in Redis); raises :class:`BudgetExceeded`.

        Raises:
            ConfigError: a bad amount, or ``key`` already bound to other amounts.
        """
        check_key(key)
        lines = check_lines(lines)
        sig = json.dumps(signature(lines))
        now = self.clock()
        keys = [self._k("res", key)]
        record = json.dumps([ln.account for ln in lines])
        args: list[Any] = [repr(now), self.ttl, key, repr(now + self.lease_s), sig, record]
        for ln in lines:
            keys += [self._k(kind, ln.account) for kind in ("acct", "rq", "lease", "held")]
            meta = json.dumps([ln.budget, ln.scope, ln.cap_usd, ln.cap_tokens, ln.cap_requests, ln.window_s])
            args += [ln.usd, ln.tokens, ln.cap_usd, ln.cap_tokens, ln.cap_requests, repr(ln.window_s), meta]
        out = self._reserve(keys=keys, args=args)
        status = int(out[0])
        if status == 0:
            line = lines[int(out[1]) - 1]
            raise exceeded(line, _text(out[2]), int(out[3]), int(out[4]), int(out[5]), int(out[6]))
        if status == 3:
            raise key_reused(key, [tuple(x) for x in json.loads(_text(out[1]))], signature(lines))
        if status == 2:
            return _reservation(key, lines if _text(out[1]) == "R" else (), False)
        with self._lock:  # remembered so that settling here needs no extra round trip
            self._held[key] = record
            if len(self._held) > 100_000:
                self._held.popitem(last=False)
        return _reservation(key, lines, True)

    def _end(self, key: str, mode: str, usd: int, tokens: int) -> bool:
        check_key(key)
        with self._lock:
            raw: Any = self._held.pop(key, None)
        for _ in range(3):  # the record can change between reading it and the script: read again then
            if raw is None:
                raw = self.client.hget(self._k("res", key), "lines")
                if raw is None:
                    return False
            record = _text(raw)
            keys = [self._k("res", key), self._k("overruns")]
            for account in json.loads(record):
                keys += [self._k(kind, account) for kind in ("acct", "lease", "held")]
            done = int(self._finish(keys=keys, args=[mode, record, usd, tokens, repr(self.clock()), key]))
            if done >= 0:
                return done == 1
            raw = None
        return False

    def settle(self, key: str, usd: int, tokens: int) -> bool:
        """Replace the reservation by the actual amounts; False (no-op) if already settled/released.

        Works from any process (the reservation is read from Redis); a holder whose lease ended is
        still charged, and counted in :meth:`overruns`.
        """
        usd, tokens = check_actual(usd, tokens)
        return self._end(key, "S", usd, tokens)

    def release(self, key: str) -> bool:
        """Drop the reservation without charging; False if nothing was held."""
        return self._end(key, "X", 0, 0)

    def reclaim(self) -> int:
        """Return every expired lease under this prefix to its account now; the count returned.

        Reserve, settle and :meth:`accounts` do this for the accounts they touch, so calling it is
        only needed to see the room come back without touching the account.
        """
        now = repr(self.clock())
        total = 0
        for account in self._account_names():
            keys = [self._k(kind, account) for kind in ("acct", "lease", "held")]
            total += int(self._sweep(keys=keys, args=[now]))
        return total

    def _account_names(self) -> list[str]:
        names = []
        for raw in sorted(self.client.scan_iter(match=self._k("acct", "*"), count=500)):
            names.append(_text(raw).split(":", 2)[2])
        return names

    def accounts(self) -> list[dict[str, Any]]:
        """One row per account under this prefix (see :meth:`InProcessLedger.accounts`)."""
        self.reclaim()
        rows = []
        now = self.clock()
        for account in self._account_names():
            h = {_text(k): _text(v) for k, v in self.client.hgetall(self._k("acct", account)).items()}
            if "meta" not in h:
                continue
            budget, scope, cu, ct, cr, w = json.loads(h["meta"])
            meta = Line(account, budget, scope, int(cu), int(ct), int(cr), float(w), 0, 0)
            in_window = None
            if meta.cap_requests >= 0:
                in_window = self.client.zcount(self._k("rq", account), now - meta.window_s, "+inf")
            amounts = [int(h.get(f, 0)) for f in ("su", "ru", "st", "rt", "n")]
            rows.append(row(account, meta, *amounts, in_window))
        return rows

    def overruns(self) -> int:
        """How many settled calls cost more than they reserved (or settled after their lease ended)."""
        return int(self.client.get(self._k("overruns")) or 0)
