"""Cache backends: in-process (LRU), on disk (diskcache) and Redis (shared by processes).

Every backend stores ``str`` values in a small JSON envelope carrying the expiry time and tags, so
TTL is decided by one injectable ``clock`` (tests advance a fake clock; no sleeping), and prefix/tag
invalidation works the same everywhere. Disk and Redis also get a real expiry (``expire`` / ``PX``)
so expired entries are reclaimed even if never read again.

Thread safety: :class:`MemoryBackend` locks its dict; diskcache and Redis are safe across threads
and processes (Redis writes for one entry go in one MULTI/EXEC transaction).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from agentops.errors import ConfigError, MissingDependencyError

__all__ = ["CacheBackend", "DiskBackend", "MemoryBackend", "RedisBackend"]

Clock = Callable[[], float]


class CacheBackend(Protocol):
    """What the caches need from a store."""

    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str, *, ttl_s: float | None = None, tags: Iterable[str] = ()) -> None: ...
    def delete(self, key: str) -> bool: ...
    def invalidate_prefix(self, prefix: str) -> int: ...
    def invalidate_tag(self, tag: str) -> int: ...
    def clear(self) -> None: ...
    def __len__(self) -> int: ...


def _check_ttl(ttl_s: float | None) -> None:
    if ttl_s is not None and not ttl_s > 0:
        raise ConfigError(f"ttl_s must be > 0 seconds or None (no expiry), got {ttl_s!r}")


def _envelope(value: str, ttl_s: float | None, tags: Iterable[str], clock: Clock) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"cache values are str (JSON text), got {type(value).__name__}; json.dumps it first")
    _check_ttl(ttl_s)
    exp = clock() + ttl_s if ttl_s else None
    return json.dumps({"exp": exp, "tags": sorted(set(tags)), "v": value})


def _open(raw: str | bytes | None, clock: Clock) -> dict[str, Any] | None:
    if raw is None:
        return None
    env = json.loads(raw)
    if env["exp"] is not None and env["exp"] <= clock():
        return None
    return env


class MemoryBackend:
    """In-process LRU store bounded by ``max_entries``."""

    def __init__(self, *, max_entries: int = 10_000, clock: Clock = time.time) -> None:
        if max_entries < 1:
            raise ConfigError(f"max_entries must be ≥ 1, got {max_entries!r}")
        self.max_entries, self.clock = max_entries, clock
        self._data: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        """The live value for ``key`` (refreshes its LRU position), else None."""
        with self._lock:
            env = _open(self._data.get(key), self.clock)
            if env is None:
                self._data.pop(key, None)
                return None
            self._data.move_to_end(key)
            return env["v"]

    def set(self, key: str, value: str, *, ttl_s: float | None = None, tags: Iterable[str] = ()) -> None:
        """Store ``value``; evicts least-recently-used entries beyond ``max_entries``."""
        raw = _envelope(value, ttl_s, tags, self.clock)
        with self._lock:
            self._data[key] = raw
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def delete(self, key: str) -> bool:
        """Remove one key; True if it existed."""
        with self._lock:
            return self._data.pop(key, None) is not None

    def _drop(self, pred: Callable[[str, dict[str, Any]], bool]) -> int:
        with self._lock:
            doomed = [k for k, raw in self._data.items() if pred(k, json.loads(raw))]
            for k in doomed:
                del self._data[k]
            return len(doomed)

    def invalidate_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix``; returns how many."""
        return self._drop(lambda k, env: k.startswith(prefix))

    def invalidate_tag(self, tag: str) -> int:
        """Remove every entry stored with ``tag``; returns how many."""
        return self._drop(lambda k, env: tag in env["tags"])

    def clear(self) -> None:
        """Remove everything."""
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class DiskBackend:
    """On-disk store (diskcache): survives restarts, shared by processes on one machine.

    ``size_limit_bytes`` bounds the directory (diskcache culls least-recently-stored entries).
    """

    def __init__(self, directory: str, *, size_limit_bytes: int = 256 * 2**20, clock: Clock = time.time) -> None:
        try:
            import diskcache
        except ImportError:
            raise MissingDependencyError("DiskBackend needs diskcache: pip install diskcache") from None
        self.clock = clock
        self._cache = diskcache.Cache(directory, size_limit=size_limit_bytes, eviction_policy="least-recently-stored")

    def get(self, key: str) -> str | None:
        """The live value for ``key``, else None."""
        env = _open(self._cache.get(key), self.clock)
        return None if env is None else env["v"]

    def set(self, key: str, value: str, *, ttl_s: float | None = None, tags: Iterable[str] = ()) -> None:
        """Store ``value`` (real expiry set too, so disk space is reclaimed)."""
        self._cache.set(key, _envelope(value, ttl_s, tags, self.clock), expire=ttl_s)

    def delete(self, key: str) -> bool:
        """Remove one key; True if it existed."""
        return bool(self._cache.delete(key))

    def _drop(self, pred: Callable[[str, dict[str, Any]], bool]) -> int:
        n = 0
        for k in list(self._cache.iterkeys()):
            raw = self._cache.get(k)
            if raw is not None and pred(k, json.loads(raw)) and self._cache.delete(k):
                n += 1
        return n

    def invalidate_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix``; returns how many."""
        return self._drop(lambda k, env: str(k).startswith(prefix))

    def invalidate_tag(self, tag: str) -> int:
        """Remove every entry stored with ``tag``; returns how many."""
        return self._drop(lambda k, env: tag in env["tags"])

    def clear(self) -> None:
        """Remove everything."""
        self._cache.clear()

    def close(self) -> None:
        """Close the underlying database files."""
        self._cache.close()

    def __len__(self) -> int:
        return len(self._cache)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisBackend:
    """Redis store shared by processes: ``{namespace}:k:<key>`` values, an insertion-order ZSET for the
    ``max_entries`` bound, and one SET per tag.

    Args:
        client: a ``redis.Redis`` (``redis.Redis.from_url(url)``); responses may be bytes or str.
        namespace: key prefix, so several caches share one database.
    """

    def __init__(
        self, client: Any, *, namespace: str = "agentops:cache", max_entries: int = 100_000, clock: Clock = time.time
    ) -> None:
        if max_entries < 1:
            raise ConfigError(f"max_entries must be ≥ 1, got {max_entries!r}")
        self.r, self.ns, self.max_entries, self.clock = client, namespace, max_entries, clock

    def _k(self, key: str) -> str:
        return f"{self.ns}:k:{key}"

    def get(self, key: str) -> str | None:
        """The live value for ``key``, else None."""
        env = _open(self.r.get(self._k(key)), self.clock)
        return None if env is None else env["v"]

    def set(self, key: str, value: str, *, ttl_s: float | None = None, tags: Iterable[str] = ()) -> None:
        """Store ``value`` atomically with its tags; trims the oldest entries beyond ``max_entries``."""
        tags = sorted(set(tags))
        raw = _envelope(value, ttl_s, tags, self.clock)
        order = self.r.incr(f"{self.ns}:seq")
        pipe = self.r.pipeline(transaction=True)
        pipe.set(self._k(key), raw, px=int(ttl_s * 1000) + 1000 if ttl_s else None)
        pipe.zadd(f"{self.ns}:order", {key: order})
        for tag in tags:
            pipe.sadd(f"{self.ns}:tag:{tag}", key)
        pipe.execute()
        excess = int(self.r.zcard(f"{self.ns}:order")) - self.max_entries
        if excess > 0:
            for old, _ in self.r.zpopmin(f"{self.ns}:order", excess):
                self.r.delete(self._k(old.decode() if isinstance(old, bytes) else old))

    def delete(self, key: str) -> bool:
        """Remove one key; True if it existed."""
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(self._k(key))
        pipe.zrem(f"{self.ns}:order", key)
        return bool(pipe.execute()[0])

    def _delete_many(self, keys: list[str]) -> int:
        if not keys:
            return 0
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(*[self._k(k) for k in keys])
        pipe.zrem(f"{self.ns}:order", *keys)
        return int(pipe.execute()[0])

    def invalidate_prefix(self, prefix: str) -> int:
        """Remove every key starting with ``prefix`` (SCAN, never KEYS); returns how many."""
        start = len(self._k(""))
        keys = [
            (k.decode() if isinstance(k, bytes) else k)[start:]
            for k in self.r.scan_iter(match=self._k(_glob_escape(prefix)) + "*", count=500)
        ]
        return self._delete_many(keys)

    def invalidate_tag(self, tag: str) -> int:
        """Remove every entry stored with ``tag``; returns how many."""
        members = self.r.smembers(f"{self.ns}:tag:{tag}")
        self.r.delete(f"{self.ns}:tag:{tag}")
        return self._delete_many([m.decode() if isinstance(m, bytes) else m for m in members])

    def clear(self) -> None:
        """Remove everything under this namespace."""
        keys = list(self.r.scan_iter(match=_glob_escape(self.ns) + ":*", count=500))
        if keys:
            self.r.delete(*keys)

    def __len__(self) -> int:
        return int(self.r.zcard(f"{self.ns}:order"))
