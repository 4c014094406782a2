"""Replicas forked from the current process: separate processes in milliseconds, for demos and notebooks.

A replica started with ``python -m agentops serve`` (:class:`~agentops.serve.testing.ServiceProcess`,
what production and the tests run) imports AG2, the A2A SDK and the package again — seconds per replica.
:class:`ForkedReplica` forks the process that already imported them: the child builds its own app
(``make_app(url)``: its own agent, Redis clients and budget ledger, so nothing but Redis is shared), serves
it on uvicorn on a socket bound before the fork (so the URL is known and connections queue at once) and
drains on SIGTERM like the CLI. The child's output goes to ``/dev/null``; it never returns into the
parent's code (``os._exit``). POSIX only (``os.fork``); the parent's other threads do not exist in the
child, which touches none of their state.

Why hand-written: ``multiprocessing`` (fork context) would pickle nothing here but wraps the child in a
bootstrap that flushes the parent's streams — a notebook kernel's streams, which the child must not touch;
what is left is ``os.fork`` + ``waitpid`` with bounded waits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from agentops import _identity  # noqa: F401
from agentops.errors import ConfigError

__all__ = ["ForkedReplica"]


def _child(make_app: Callable[[str], Any], sock: Any, url: str, grace_s: float) -> None:
    from agentops.serve.server import _server

    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    sys.stdin = sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives until _exit
    asyncio.events._set_running_loop(None)  # the parent's loop (a notebook's) is not running here
    # uvicorn re-raises a captured signal after its graceful shutdown: a no-op handler makes that exit 0
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _server(make_app(url), grace_s).run(sockets=[sock])


class ForkedReplica:
    """One service replica in a forked child process; a context manager.

    Args:
        make_app: ``url -> ASGI app`` (e.g. ``lambda url: build_app(agent_factory(), keys=..., url=url)``),
            called in the child.
        grace_s: in-flight requests get this long when the replica is stopped.
        stop_timeout_s: after SIGTERM, the child is killed if it has not exited by then.
    """

    def __init__(self, make_app: Callable[[str], Any], *, grace_s: float = 1.0, stop_timeout_s: float = 10.0) -> None:
        if not hasattr(os, "fork"):
            raise ConfigError("forked replicas need os.fork (POSIX); use agentops.serve.testing.ServiceProcess")
        self.make_app, self.grace_s, self.stop_timeout_s = make_app, grace_s, stop_timeout_s
        self.url: str | None = None
        self.pid: int | None = None
        self.returncode: int | None = None

    def start(self) -> ForkedReplica:
        """Fork; the child serves on a socket already listening, so the URL takes requests at once."""
        import ag2.a2a  # noqa: F401 - imported once here, not once per child
        import starlette.applications  # noqa: F401
        import uvicorn  # noqa: F401

        from agentops.serve.server import bind, url_of

        sock = bind("127.0.0.1", 0)
        sock.listen(128)
        self.url = url_of(sock)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which never returns
            code = 1
            try:
                _child(self.make_app, sock, self.url, self.grace_s)
                code = 0
            finally:
                os._exit(code)
        sock.close()
        self.pid = pid
        return self

    def stop(self) -> int | None:
        """SIGTERM (the replica drains), wait at most ``stop_timeout_s``, then SIGKILL; the exit code."""
        if self.pid is None or self.returncode is not None:
            return self.returncode
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        while True:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                _, status = os.waitpid(self.pid, 0)
                break
            time.sleep(0.01)
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def __enter__(self) -> ForkedReplica:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
