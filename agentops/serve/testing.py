"""Run ``python -m agentops serve`` as a child process (scale-out demos and tests), always stopped.

The child binds a free loopback port and prints ``serving on <url>``; :class:`ServiceProcess` waits for
that line (bounded), and on exit sends SIGTERM (the service drains) then kills it after ``stop_timeout_s``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from agentops import _identity  # noqa: F401
from agentops.errors import ConfigError

__all__ = ["ServiceProcess"]

_ROOT = str(Path(__file__).resolve().parents[2])


class ServiceProcess:
    """A service in its own process on a free loopback port; a context manager.

    Args:
        target: ``module:factory`` returning an ``ag2.Agent``.
        redis_url: Redis shared with other replicas (rate limits and the factory's budget ledger).
        rate: per-key rate limit (``""`` for none).
        env: extra environment (e.g. ``AGENTOPS_API_KEYS``, :func:`~agentops.scenarios.deployment.replica_env`
            for the model); keys never appear on the command line.
        args: extra ``serve`` options (e.g. ``["--queue-capacity", "1"]``).
    """

    def __init__(
        self,
        target: str = "agentops.scenarios.deployment:support_agent",
        *,
        redis_url: str | None = None,
        rate: str = "60/minute",
        env: Mapping[str, str] | None = None,
        start_timeout_s: float = 90.0,
        stop_timeout_s: float = 30.0,
        grace_s: float = 2.0,
        args: Sequence[str] = (),
    ) -> None:
        self.args = [sys.executable, "-m", "agentops", "serve", target, "--port", "0", "--rate", rate, *args]
        self.args += ["--grace-s", str(grace_s)] + (["--redis-url", redis_url] if redis_url else [])
        path = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH", "")) if p)
        self.env = {**os.environ, "PYTHONPATH": path, **dict(env or {})}
        self.start_timeout_s, self.stop_timeout_s = start_timeout_s, stop_timeout_s
        self.url: str | None = None
        self.returncode: int | None = None
        self._lines: list[str] = []
        self._proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def output(self) -> str:
        """Everything the child printed (stdout and stderr)."""
        return "".join(self._lines)

    def _pump(self, ready: threading.Event) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.append(line)
            if line.startswith("serving on "):
                self.url = line.split()[-1]
                ready.set()
        ready.set()

    def start(self, *, wait: bool = True) -> ServiceProcess:
        """Launch the child; with ``wait=False`` call :meth:`wait_ready` later (start replicas in parallel)."""
        self._ready = threading.Event()
        self._proc = subprocess.Popen(
            self.args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        threading.Thread(target=self._pump, args=(self._ready,), daemon=True).start()
        return self.wait_ready() if wait else self

    def wait_ready(self) -> ServiceProcess:
        """Wait (bounded) until the child prints its URL; stops it and raises if it does not."""
        if not self._ready.wait(self.start_timeout_s) or self.url is None:
            self.stop()
            raise ConfigError(
                f"the service process did not start within {self.start_timeout_s:g} s: {self.output[-500:]}"
            )
        return self

    def stop(self) -> None:
        """SIGTERM (the service drains), then kill after ``stop_timeout_s``."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self.returncode = self._proc.returncode
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @classmethod
    def replicas(cls, n: int, **options: object) -> list[ServiceProcess]:
        """Start ``n`` replicas in parallel and wait for all (stopping every one if any fails)."""
        procs = [cls(**options).start(wait=False) for _ in range(n)]  # type: ignore[arg-type]
        try:
            return [p.wait_ready() for p in procs]
        except BaseException:
            for p in procs:
                p.stop()
            raise
