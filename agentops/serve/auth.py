"""API keys and per-key rate limits for the agent service.

Keys come from the environment (``AGENTOPS_API_KEYS="alice=s3cret,bob=0ther"``) or a file (one
``name=key`` per line, ``#`` comments). A presented key is compared against *every* stored key with
:func:`hmac.compare_digest` on SHA-256 digests, so neither the match position nor the key length leaks
through timing. Keys are never logged or echoed: errors name the key's *name* or say "invalid key", and
:class:`KeyStore`'s ``repr`` shows names only.

Rate limits use the ``limits`` library (moving-window limiter). With ``storage_url="redis://..."`` the
windows live in Redis, so every replica of the service shares one limit per key; ``memory://`` keeps
them per process. Nothing here is hand-written that ``limits`` already does.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentops import _identity  # noqa: F401
from agentops.errors import ConfigError, MissingDependencyError

__all__ = ["ENV_KEYS", "KeyStore", "RateLimit", "RateLimitDecision"]

ENV_KEYS = "AGENTOPS_API_KEYS"
"""Environment variable holding ``name=key`` pairs separated by commas."""

_MIN_KEY_CHARS = 8


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyStore:
    """Named API keys; :meth:`identify` returns the name for a presented key, or ``None``.

    >>> store = KeyStore({"alice": "alice-key-123"})
    >>> store.identify("alice-key-123"), store.identify("nope")
    ('alice', None)
    >>> store
    KeyStore(names=['alice'])
    """

    def __init__(self, keys: Mapping[str, str]) -> None:
        if not keys:
            raise ConfigError(f"no API keys: set {ENV_KEYS}='name=key,...' or pass a keys file (one name=key a line)")
        digests: dict[str, bytes] = {}
        seen: set[bytes] = set()
        for name, key in keys.items():
            if not name or not name.replace("-", "").replace("_", "").isalnum():
                raise ConfigError(f"API key name {name!r} must be letters, digits, '-' or '_'")
            if not isinstance(key, str) or len(key) < _MIN_KEY_CHARS:
                raise ConfigError(f"API key {name!r} is too short: use at least {_MIN_KEY_CHARS} characters")
            d = _digest(key)
            if d in seen:
                raise ConfigError(f"API key {name!r} reuses another name's key: give every client its own key")
            seen.add(d)
            digests[name] = d
        self._digests = digests

    @property
    def names(self) -> list[str]:
        """The key names (never the keys)."""
        return sorted(self._digests)

    def identify(self, presented: str | None) -> str | None:
        """Name of the key equal to ``presented`` (constant time over all keys), else ``None``."""
        if not presented:
            return None
        probe = _digest(presented)
        found = None
        for name, d in self._digests.items():  # no early exit: every key is compared
            if hmac.compare_digest(probe, d):
                found = name
        return found

    def __repr__(self) -> str:
        return f"KeyStore(names={self.names})"

    @classmethod
    def parse(cls, text: str, *, source: str = "keys") -> KeyStore:
        """Parse ``name=key`` pairs separated by commas or newlines (``#`` starts a comment line)."""
        pairs: dict[str, str] = {}
        for n, raw in enumerate(text.replace(",", "\n").splitlines(), 1):
            item = raw.strip()
            if not item or item.startswith("#"):
                continue
            name, sep, key = item.partition("=")
            if not sep:
                raise ConfigError(f"{source}: entry {n} is not name=key (the key itself is not shown)")
            if name.strip() in pairs:
                raise ConfigError(f"{source}: key name {name.strip()!r} appears twice")
            pairs[name.strip()] = key.strip()
        return cls(pairs)

    @classmethod
    def from_env(cls, var: str = ENV_KEYS) -> KeyStore:
        """Keys from an environment variable (``name=key,name2=key2``)."""
        text = os.environ.get(var)
        if not text:
            raise ConfigError(f"environment variable {var} is not set: export {var}='name=key,...'")
        return cls.parse(text, source=var)

    @classmethod
    def from_file(cls, path: str | Path) -> KeyStore:
        """Keys from a file, one ``name=key`` a line."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"API keys file {str(p)!r} does not exist: create it with one name=key a line")
        return cls.parse(p.read_text(encoding="utf-8"), source=str(p))


@dataclass(frozen=True)
class RateLimitDecision:
    """Whether a request may pass, and when the window frees a slot (epoch seconds)."""

    allowed: bool
    remaining: int
    reset_at: float


class RateLimit:
    """Per-key moving-window limit (``"5/second"``, ``"100/minute"``) on a ``limits`` storage.

    Args:
        rate: a ``limits`` rate string, e.g. ``"60/minute"``.
        storage_url: ``"memory://"`` (one process) or ``"redis://host:port/db"`` (shared by replicas).
        namespace: key prefix in the storage, one per service.
        per_key: other rates for some key names, e.g. ``{"loadtest": "1000/minute"}``.
    """

    def __init__(
        self,
        rate: str,
        *,
        storage_url: str = "memory://",
        namespace: str = "agentops-serve",
        per_key: dict[str, str] | None = None,
    ) -> None:
        try:
            from limits import parse
            from limits.storage import storage_from_string
            from limits.strategies import MovingWindowRateLimiter
        except ImportError as exc:  # pragma: no cover - limits is a core dependency
            raise MissingDependencyError("rate limits need `limits`: pip install limits") from exc

        def _parse(text: str) -> Any:
            try:
                return parse(text)
            except ValueError:
                raise ConfigError(f"rate {text!r} is not a rate: use e.g. '5/second' or '100/minute'") from None

        self.item = _parse(rate)
        self.per_key = {name: _parse(r) for name, r in (per_key or {}).items()}
        try:
            self.storage = storage_from_string(storage_url)
        except Exception as exc:
            raise ConfigError(f"rate-limit storage {storage_url!r} is not usable ({type(exc).__name__})") from None
        self.rate, self.storage_url, self.namespace = rate, storage_url, namespace
        self._limiter = MovingWindowRateLimiter(self.storage)

    def hit(self, who: str) -> RateLimitDecision:
        """Count one request for ``who`` (a key name); refused when the window is full."""
        item = self.per_key.get(who, self.item)
        allowed = self._limiter.hit(item, self.namespace, who)
        stats = self._limiter.get_window_stats(item, self.namespace, who)
        return RateLimitDecision(bool(allowed), int(stats.remaining), float(stats.reset_time))

    def reset(self) -> None:
        """Forget every window (tests, notebooks)."""
        self.storage.reset()
