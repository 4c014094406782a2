"""Clocks for telemetry: real time, or a simulated clock that follows the offline model's latency.

A :class:`SimulatedClock` lets a notebook replay hours of traffic in a second with exact, repeatable
times and latencies; it is also what the unit tests use instead of wall-time bounds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from agentops.errors import ConfigError

__all__ = ["Clock", "SimulatedClock", "WallClock"]


class WallClock:
    """Real time: ``now()`` is the Unix time in seconds, durations come from ``perf_counter``."""

    simulated = False

    def now(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def tick(self) -> float:
        """A monotonic reading for measuring durations."""
        return time.perf_counter()


class SimulatedClock:
    """Deterministic time for drills and notebooks: it moves only when told to or when a model "waits".

    ``now()`` is ``start`` plus every explicit :meth:`advance` plus the simulated latency of every call
    recorded so far by the offline models it follows (``OfflineModel(sleep=False)`` records latency
    without sleeping). Requests run one after another, so the latency measured between two readings is
    exactly the simulated latency of the calls in between — a serial server's clock.

    Safe under asyncio; meant for one event loop (followed models are read without their lock).

    Example:
        >>> clock = SimulatedClock(start=0.0)
        >>> clock.advance(30)
        30.0
        >>> clock.now()
        30.0
    """

    simulated = True

    def __init__(self, start: float = 0.0, follow: Iterable[Any] = ()) -> None:
        self._base = float(start)
        self._lock = threading.Lock()
        self._followed: list[list[Any]] = []  # [model, records seen]
        for model in follow:
            self.follow(model)

    def follow(self, model: Any) -> SimulatedClock:
        """Add an offline model whose recorded latency advances this clock; returns self."""
        if not hasattr(model, "log") or not hasattr(model, "calls"):
            raise ConfigError(
                f"SimulatedClock can only follow an OfflineModel (with .log and .calls), got {type(model).__name__}"
            )
        with self._lock:
            if all(m is not model for m, _ in self._followed):
                self._followed.append([model, model.calls])
        return self

    def _absorb(self) -> None:
        for entry in self._followed:
            model, seen = entry
            new = model.calls - seen
            if new > 0:
                log = model.log
                records = list(log)[-new:] if new <= len(log) else list(log)
                self._base += sum(r.latency_s for r in records)
                entry[1] = model.calls

    def now(self) -> float:
        """Current simulated time in seconds."""
        with self._lock:
            self._absorb()
            return self._base

    tick = now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (≥ 0); returns the new time."""
        if seconds < 0:
            raise ConfigError(f"a clock cannot go backwards: advance({seconds})")
        with self._lock:
            self._absorb()
            self._base += float(seconds)
            return self._base

    def advance_to(self, t: float) -> float:
        """Move time forward to ``t`` if it is later than now (a request arriving); returns now."""
        with self._lock:
            self._absorb()
            self._base = max(self._base, float(t))
            return self._base


Clock = WallClock | SimulatedClock
