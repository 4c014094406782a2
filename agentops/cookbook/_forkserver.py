"""Kernels forked from one pre-warmed process, so a run imports AG2, pandas and matplotlib once, not per chapter.

Every chapter's kernel spends about 3.4 CPU-seconds importing the same modules (``ag2`` and ``openai``,
pandas, matplotlib, IPython, ``agentops``) before its first cell runs — a third of an offline run. Here one
*zygote* process imports them once, checks that no thread exists yet (forking after threads start is
unsafe), and then forks a kernel per chapter: the child calls ``os.setsid()``, takes the environment and
the folder the kernel manager asked for and runs ipykernel's ``IPKernelApp`` with the connection file,
exactly as ``python -m ipykernel_launcher -f <file>`` would. The zygote reaps its children and reports
their exit codes; it exits (killing what is left) when the runner closes its pipe or dies.

Hooked into jupyter_client as a kernel provisioner (:func:`fork_provisioner`, a ``LocalProvisioner``
whose process is a :class:`ForkedProcess` with Popen's ``pid/poll/wait/send_signal/kill/terminate``), so
interrupts, shutdown, the runner's SIGINT/SIGTERM handling and process-group kills work unchanged.
Anything unusual falls back to the normal launch: no ``fork`` (not Linux), a kernel command other than
``<this python> -m ipykernel_launcher``, an environment that differs from the zygote's in a way imports
could have seen, or a zygote that failed to start, found threads, or died. ``AGENTOPS_FORK_KERNELS=0``
(or ``run(..., fork_kernels=False)``, ``agentops run --no-fork``) turns it off.

What a kernel would have seen importing those modules itself is reproduced: pandas picks its display
defaults under a ``get_ipython()`` that looks like a kernel's, ``sys.stdout``/``sys.stderr`` bound at import
follow the kernel's streams, the inline matplotlib backend is chosen as ipykernel would, the kernel's parent
is the zygote (it exits if the zygote goes), and ``random``/``numpy.random`` are reseeded per kernel.

Hand-written because no maintained library does it: jupyter_client and ipykernel start every kernel as a
fresh process and offer no fork server, and ``multiprocessing``'s forkserver runs Python functions, not a
kernel with its own session, environment and folder behind jupyter_client's kernel manager.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from agentops._pids import pid_exists

__all__ = ["ForkServer", "ForkedProcess", "fork_enabled", "fork_provisioner"]

OPT_OUT_ENV = "AGENTOPS_FORK_KERNELS"
_INLINE = "module://matplotlib_inline.backend_inline"
# What the zygote imports. First the kernel's own stack, which a kernel imports before ipykernel replaces
# sys.stdout/sys.stderr; then what the chapters import from cells, while those are already the kernel's
# streams (see _Stream). The inline backend is left out on purpose: its import configures the kernel's
# IPython shell, which only exists in the child.
KERNEL_STACK = ("ipykernel.kernelapp", "ipykernel.ipkernel")
PRELOAD = (
    "pandas",  # first, and as inside a kernel: its display defaults depend on it (see _as_in_a_kernel)
    "ag2",
    "numpy",
    "matplotlib.pyplot",
    "agentops.models",
    "agentops.pricing",
    "agentops.scenarios",
    "agentops.testing",
    "agentops.telemetry",
    "agentops.evals",
    "agentops.graph",
)
# Variables a kernel manager sets per kernel; any other difference means the zygote imported under another
# environment than the kernel's, and that kernel is launched normally.
_PER_KERNEL = ("JPY_", "PYDEVD_")
_READY_TIMEOUT = 120.0
_ZYGOTE = ["-m", "agentops.cookbook._zygote"]  # not -c: see agentops/cookbook/_zygote.py


def fork_enabled(requested: bool | None = None) -> bool:
    """Whether kernels are forked: ``requested`` if given, else not when ``AGENTOPS_FORK_KERNELS`` is 0/false/no/off.

    >>> fork_enabled(False)
    False
    """
    if not (sys.platform.startswith("linux") and hasattr(os, "fork")):
        return False
    if requested is not None:
        return bool(requested)
    return os.environ.get(OPT_OUT_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _comparable(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith(_PER_KERNEL) and k != "MPLBACKEND"}


class ForkedProcess:
    """The ``subprocess.Popen`` face of a kernel forked by the zygote: its exit code arrives from the zygote."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, server: ForkServer) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._server = server
        self._exited = threading.Event()

    def _set_exit(self, code: int) -> None:
        self.returncode = code
        self._exited.set()

    def poll(self) -> int | None:
        if self.returncode is None and not self._server.alive and not pid_exists(self.pid):
            self._set_exit(-signal.SIGKILL)  # the zygote died; init reaped the kernel
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        step = 0.1 if timeout is None else min(0.1, timeout)
        waited = 0.0
        while self.poll() is None:
            if timeout is not None and waited >= timeout:
                raise subprocess.TimeoutExpired(["kernel", str(self.pid)], timeout)
            self._exited.wait(step)
            waited += step
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ForkServer:
    """The runner's end of one zygote: :meth:`launch` forks a kernel, or returns ``None`` to launch normally."""

    def __init__(self, env: Mapping[str, str] | None = None, command: list[str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.command = command or [sys.executable, *_ZYGOTE]
        self.failure: str | None = None
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._replies: dict[int, dict[str, Any]] = {}
        self._reply_ready = threading.Condition()
        self._processes: dict[int, ForkedProcess] = {}
        self._exits: dict[int, int] = {}
        self._ids = iter(range(1, 1 << 62))
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self.pid: int | None = None

    def start(self) -> ForkServer:
        """Start the zygote (its imports run in the background; the first :meth:`launch` waits for them)."""
        read_fd, write_fd = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [*self.command, str(write_fd)],
                stdin=subprocess.PIPE,
                pass_fds=(write_fd,),
                env=self.env,
                start_new_session=True,  # Ctrl-C reaches the runner, which stops kernels itself
            )
        except OSError as exc:
            os.close(read_fd)
            self._fail(f"could not start: {exc}")
            return self
        finally:
            os.close(write_fd)
        self._reader = threading.Thread(target=self._read, args=(read_fd,), name="forkserver", daemon=True)
        self._reader.start()
        return self

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _fail(self, reason: str) -> None:
        self.failure = self.failure or reason
        self._ready.set()
        with self._reply_ready:
            self._reply_ready.notify_all()

    def _read(self, fd: int) -> None:
        with open(fd, "rb", buffering=0) as pipe, contextlib.suppress(OSError, ValueError):
            for line in iter(pipe.readline, b""):
                self._dispatch(json.loads(line))
        for process in list(self._processes.values()):
            process.poll()
        self._fail("the zygote exited")

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("kind")
        if kind == "ready":
            self.pid = message["pid"]
            self._ready.set()
        elif kind == "unsafe":
            self._fail(message["reason"])
        elif kind == "exit":
            pid, code = message["pid"], message["code"]
            with self._lock:
                process = self._processes.get(pid)
                self._exits[pid] = code
            if process is not None:
                process._set_exit(code)
        elif kind == "forked":
            with self._reply_ready:
                self._replies[message["id"]] = message
                self._reply_ready.notify_all()

    def usable(self, cmd: list[str], env: Mapping[str, str] | None, extra: Mapping[str, Any]) -> bool:
        """Whether a launch can fork: this Python's ipykernel launcher, the zygote's environment, no Popen options."""
        return (
            self._proc is not None
            and len(cmd) >= 3
            and os.path.abspath(cmd[0]) == os.path.abspath(self.command[0])
            and cmd[1:3] == ["-m", "ipykernel_launcher"]
            and all(v is None for v in extra.values())
            and _comparable(env if env is not None else os.environ) == _comparable(self.env)
        )

    def launch(self, cmd: list[str], env: Mapping[str, str] | None, cwd: str | os.PathLike[str] | None, **extra: Any):
        """Fork a kernel running ``cmd``'s ipykernel arguments; ``None`` when it cannot (launch normally then)."""
        if not self.usable(cmd, env, extra) or not self._ready.wait(_READY_TIMEOUT) or self.failure:
            return None
        request = {
            "id": next(self._ids),
            "argv": cmd[3:],
            "env": dict(env if env is not None else os.environ),
            "cwd": os.fspath(cwd) if cwd else os.getcwd(),
        }
        try:
            with self._lock:
                assert self._proc is not None and self._proc.stdin is not None
                self._proc.stdin.write(json.dumps(request).encode() + b"\n")
                self._proc.stdin.flush()
        except (OSError, ValueError):
            self._fail("the zygote's pipe closed")
            return None
        with self._reply_ready:
            self._reply_ready.wait_for(lambda: request["id"] in self._replies or self.failure is not None, 30)
            reply = self._replies.pop(request["id"], None)
        if reply is None or "pid" not in reply:
            return None
        process = ForkedProcess(reply["pid"], self)
        with self._lock:
            self._processes[process.pid] = process
            if process.pid in self._exits:
                process._set_exit(self._exits[process.pid])
        return process

    def close(self, timeout: float = 10.0) -> None:
        """Close the zygote's pipe (it kills any kernel left and exits) and wait for it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(timeout)


@functools.cache
def fork_provisioner() -> type:
    """The ``ForkProvisioner`` class (built on first use: jupyter_client is imported only then)."""
    from jupyter_client.provisioning.local_provisioner import LocalProvisioner

    class ForkProvisioner(LocalProvisioner):
        """``LocalProvisioner`` launching through the kernel manager's ``forkserver`` when it can."""

        async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
            server = getattr(self.parent, "forkserver", None)
            extra = {k: v for k, v in self._scrub_kwargs(kwargs).items() if k not in ("env", "cwd")}
            process = server.launch(cmd, kwargs.get("env"), kwargs.get("cwd"), **extra) if server else None
            if process is None:
                return await super().launch_kernel(cmd, **kwargs)
            self.process = process
            self.pid = self.pgid = process.pid  # the child called setsid() before the zygote answered
            self.cwd = kwargs.get("cwd") or Path.cwd()
            return self.connection_info

    return ForkProvisioner


# ------------------------------------------------------ the zygote (``python -m agentops.cookbook._zygote <fd>``)


def _send(fd: int, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, json.dumps(message).encode() + b"\n")


class _Stream(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` while the zygote imports: a module that keeps it writes to the kernel's later.

    In a normal kernel, ``sys.stdout`` is already ipykernel's stream when a cell imports a module, so a module
    that binds it at import (OpenTelemetry's console exporters, for one) prints into the notebook. Bound to
    this instead, it writes to whatever ``sys.stdout`` is then — the kernel's stream — and, like that stream,
    is no terminal.
    """

    def __init__(self, name: str, real: Any) -> None:
        self._name, self._real = name, real

    def _target(self) -> Any:
        current = getattr(sys, self._name)
        return self._real if current is self or current is None else current

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        target = self._target()
        return False if target is self._real else target.isatty()

    def fileno(self) -> int:
        return self._target().fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._target().encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self._target().errors

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._target(), name)


@contextlib.contextmanager
def _as_in_a_kernel() -> Iterator[None]:
    """``get_ipython()`` answers as in a kernel while importing: pandas picks its display defaults at import time.

    (``display.max_columns`` is 0 — fit the terminal — unless ``get_ipython()`` returns a shell with a
    ``kernel``; a kernel gets 20, and a table printed as text must wrap the same way as a normal launch.)
    """
    import builtins
    import types

    shell = types.SimpleNamespace(kernel=None)
    builtins.get_ipython = lambda: shell  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del builtins.get_ipython  # type: ignore[attr-defined]


def _preload(reply_fd: int) -> bool:
    import gc
    import importlib

    # what ipykernel_launcher does before importing anything, and what IPKernelApp sets before user code
    if sys.path and (sys.path[0] == "" or Path(sys.path[0]) == Path.cwd()):
        del sys.path[0]
    if not os.environ.get("MPLBACKEND"):
        os.environ["MPLBACKEND"] = _INLINE
    for module in KERNEL_STACK:
        with contextlib.suppress(Exception):
            importlib.import_module(module)
    sys.stdout, sys.stderr = _Stream("stdout", sys.stdout), _Stream("stderr", sys.stderr)
    for module in PRELOAD:
        with contextlib.suppress(Exception), _as_in_a_kernel() if module == "pandas" else contextlib.nullcontext():
            importlib.import_module(module)
    if threading.active_count() != 1:
        names = ", ".join(t.name for t in threading.enumerate() if t is not threading.main_thread())
        _send(reply_fd, {"kind": "unsafe", "reason": f"threads started while importing: {names}"})
        return False
    gc.collect()
    gc.freeze()  # children do not copy or re-scan what every kernel shares
    _send(reply_fd, {"kind": "ready", "pid": os.getpid()})
    return True


def _reap(children: set[int], reply_fd: int, block: bool = False) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)
        _send(reply_fd, {"kind": "exit", "pid": pid, "code": os.waitstatus_to_exitcode(status)})


def _fork(request: dict[str, Any], closing: tuple[int, ...]) -> int:
    """Fork one kernel; returns its pid in the zygote and 0 in the child (which is in its own session)."""
    sync_r, sync_w = os.pipe()
    for stream in (sys.stdout, sys.stderr):  # nothing buffered may be written twice
        with contextlib.suppress(Exception):
            stream.flush()
    pid = os.fork()
    if pid == 0:
        os.close(sync_r)
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in closing:
            os.close(fd)
        os.close(sync_w)  # setsid() done: the zygote may report the pid, signals reach the new group
        return 0
    os.close(sync_w)
    with contextlib.suppress(OSError):
        os.read(sync_r, 1)
    os.close(sync_r)
    return pid


def _serve(reply_fd: int) -> dict[str, Any] | None:
    """Fork a kernel per request on stdin until EOF; returns the request in the child, ``None`` in the zygote."""
    import select

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    children: set[int] = set()
    buffer = b""
    while True:
        ready, _, _ = select.select([0, wake_r], [], [])
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        _reap(children, reply_fd)
        if 0 not in ready:
            continue
        data = os.read(0, 1 << 16)
        if not data:
            break
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            request = json.loads(line)
            pid = _fork(request, (0, reply_fd, wake_r, wake_w))
            if pid == 0:
                return request
            children.add(pid)
            _send(reply_fd, {"kind": "forked", "id": request["id"], "pid": pid})
    for pid in children:  # the runner is gone or done: nothing it started may outlive it
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    _reap(children, reply_fd, block=True)
    return None


def _become_kernel(request: dict[str, Any]) -> None:
    """In the child: the folder, environment, argv and fresh random state of a newly started kernel."""
    import random

    for name in ("stdout", "stderr"):  # the kernel starts on the real streams; what modules kept follows it
        stream = getattr(sys, name)
        if isinstance(stream, _Stream):
            setattr(sys, name, stream._real)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ["JPY_PARENT_PID"] = str(os.getppid())  # the kernel exits if the zygote goes
    if os.environ.get("MPLBACKEND") and "matplotlib" in sys.modules:
        sys.modules["matplotlib"].rcParams["backend"] = os.environ["MPLBACKEND"]
    fd = os.open(os.devnull, os.O_RDONLY)  # stdin, as the normal launch gives: not the zygote's pipe
    if fd != 0:
        os.dup2(fd, 0)
        os.close(fd)
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    import ipykernel_launcher

    sys.argv = [ipykernel_launcher.__file__, *request["argv"]]


def main(argv: list[str] | None = None) -> int:
    reply_fd = int((argv or sys.argv[1:])[0])
    if not _preload(reply_fd):
        return 1
    request = _serve(reply_fd)
    if request is None:
        return 0
    _become_kernel(request)
    from ipykernel.kernelapp import IPKernelApp

    # parent_handle's default was read from JPY_PARENT_PID when the zygote imported ipykernel: give it here
    IPKernelApp.launch_instance(argv=[*request["argv"], f"--IPKernelApp.parent_handle={os.getppid()}"])
    return 0
