"""Serve an agent on uvicorn: in a background thread (notebooks, tests) or in the foreground (CLI).

Both bind the socket first (port 0 → a free port, loopback by default) so the A2A card carries the real
URL, and both drain before uvicorn closes connections: :class:`_DrainingServer` runs
:meth:`AgentService.drain` at the start of uvicorn's shutdown (SIGTERM/SIGINT in the CLI, ``stop()`` in
a thread), so in-flight requests finish within the grace period or answer 503 ``cancelled``.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from typing import Any

from agentops import _identity  # noqa: F401
from agentops.errors import ConfigError, MissingDependencyError

__all__ = ["LOOPBACK", "ServiceThread", "bind", "run_forever"]

LOOPBACK = ("127.0.0.1", "::1", "localhost")

_QUIET_LOGS = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {n: {"handlers": ["null"], "propagate": False} for n in ("uvicorn", "uvicorn.error", "uvicorn.access")},
}


def bind(host: str = "127.0.0.1", port: int = 0, *, allow_public: bool = False) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (0 = a free port); loopback unless ``allow_public``."""
    if host not in LOOPBACK and not allow_public:
        raise ConfigError(
            f"host {host!r} is not loopback: pass --public (allow_public=True) to listen beyond this machine"
        )
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port must be between 0 (any free port) and 65535, got {port!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP (no 40 ms Nagle stalls).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1" if host == "localhost" else host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another port (0 = any free)") from None
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port`` for a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(app: Any, grace_s: float, log_config: Any = _QUIET_LOGS) -> Any:
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError("serving needs uvicorn: pip install 'ag2-agentops[serve]'") from exc

    class _DrainingServer(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            svc = getattr(app.state, "service", None)
            if svc is not None:
                self.drained = await svc.drain(grace_s)
            await super().shutdown(sockets)

    config = uvicorn.Config(
        app, log_config=log_config, access_log=False, lifespan="off", timeout_graceful_shutdown=grace_s + 2
    )
    server = _DrainingServer(config)
    server.drained = None
    return server


class ServiceThread:
    """Serve an app built by ``make_app(url)`` on a bound socket in a background thread; a context manager.

    ``start()`` waits at most ``start_timeout_s`` for uvicorn to accept; ``stop()`` drains (in-flight
    turns get ``grace_s``), stops and joins the thread (bounded). ``drained`` reports what the drain did.
    """

    def __init__(
        self,
        make_app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        grace_s: float = 2.0,
        start_timeout_s: float = 10.0,
    ) -> None:
        self.make_app, self.host, self.port = make_app, host, port
        self.grace_s, self.start_timeout_s = grace_s, start_timeout_s
        self.url: str | None = None
        self.app: Any = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def service(self) -> Any:
        """The :class:`~agentops.serve.app.AgentService` behind the app."""
        return self.app.state.service

    @property
    def drained(self) -> dict[str, int] | None:
        return getattr(self._server, "drained", None)

    def start(self) -> ServiceThread:
        sock = bind(self.host, self.port)
        self.url = url_of(sock)
        try:
            self.app = self.make_app(self.url)
        except BaseException:
            sock.close()
            raise
        self._server = _server(self.app, self.grace_s)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"agentops-serve-{self.url}"
        )
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise ConfigError(f"the service did not start within {self.start_timeout_s:g} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Drain, stop and join (at most ``grace_s`` + 5 s)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(self.grace_s + 5.0)
        self._thread = None

    def __enter__(self) -> ServiceThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_forever(make_app: Any, *, host: str, port: int, grace_s: float, allow_public: bool = False) -> dict | None:
    """Serve in the foreground until SIGINT/SIGTERM; prints ``serving on <url>`` once accepting."""
    sock = bind(host, port, allow_public=allow_public)
    url = url_of(sock)
    app = make_app(url)
    server = _server(app, grace_s)
    started = server.startup

    async def startup(sockets: Any = None) -> None:
        await started(sockets)
        print(f"serving on {url}", flush=True)

    server.startup = startup
    # uvicorn re-raises a captured signal after its shutdown; a graceful SIGTERM then ends with exit code 0.
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
    return server.drained
