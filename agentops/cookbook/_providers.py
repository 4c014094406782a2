"""Provider parameters every chapter shares, checked before any kernel starts.

A chapter that talks to a model declares the same seven parameters in its ``parameters`` cell, so one
``-p`` reaches every chapter of a run. Before a kernel starts, the runner checks each chapter's provider
against :data:`agentops.models.BACKENDS` (the table :func:`~agentops.models.model_config` reads): a
missing key, endpoint, model or cassette fails there with one line naming the variable or parameter
to set, and nothing is executed.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentops.cookbook._chapters import Chapter, short
from agentops.errors import ConfigError, MissingCredentialsError, MissingDependencyError, ParameterError

PROVIDER_PARAMETERS = (
    "llm_backend",
    "model",
    "base_url",
    "max_tokens",
    "price_input_per_1k",
    "price_output_per_1k",
    "cassette",
)
"""The provider parameters shared by every chapter that calls a model (names are fixed)."""

_LOCAL_KEY = "local-model"  # the local llama.cpp server ignores the key, but the compatible backend wants one
LOCAL_PLACEHOLDER = {"llm_backend": "compatible", "base_url": "http://127.0.0.1/v1", "model": "local-model"}
"""The ``-p`` values ``--real`` will pass, for checking a run before the local server starts."""


@contextmanager
def local_key() -> Iterator[None]:
    """``OPENAI_API_KEY`` is a placeholder in the block: the local server ignores it; a real key must not reach it."""
    saved = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = _LOCAL_KEY
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("OPENAI_API_KEY", None)
        else:
            os.environ["OPENAI_API_KEY"] = saved


def _provider_values(chapter: Chapter, given: Mapping[str, Any]) -> dict[str, Any]:
    values = chapter.values(given)
    return {name: values.get(name) for name in PROVIDER_PARAMETERS}


def _check_numbers(chapter: str, values: Mapping[str, Any]) -> None:
    for name in ("price_input_per_1k", "price_output_per_1k"):
        value = values.get(name)
        if isinstance(value, (int, float)) and not (math.isfinite(value) and value >= 0):
            raise ParameterError(f"-p {name} {short(value)} (chapter {chapter}) must be a finite USD amount ≥ 0")
    tokens = values.get("max_tokens")
    if isinstance(tokens, int) and tokens < 0:
        raise ParameterError(f"-p max_tokens {tokens} (chapter {chapter}) must be ≥ 0 (0 means the provider default)")


def _check_replay(chapter: Chapter, cassette: str) -> None:
    path = Path(cassette) if Path(cassette).is_absolute() else chapter.path.parent / cassette
    if not cassette or not path.is_file():
        raise ParameterError(
            f"llm_backend 'replay' needs a recorded cassette (chapter {chapter.name}): "
            f"-p cassette {short(cassette) if cassette else '<file>'} "
            f"{'does not exist' if cassette else 'is missing'}; record one against a real backend first"
        )


def _check_real(chapter: Chapter, backend: str, model: str | None, base_url: str | None) -> None:
    """What :func:`~agentops.models.model_config` would refuse, read from its ``BACKENDS`` table.

    The table, not a call: building a real config has side effects (a cassette opened for recording,
    the test suite's switch forbidding real requests) that a pre-flight check must not trigger.
    """
    from agentops.models import BACKENDS

    spec = BACKENDS.get(backend)
    if spec is None:
        raise ParameterError(
            f"unknown llm_backend {short(backend)} (chapter {chapter.name}); one of: {', '.join(BACKENDS)}"
        )
    if isinstance(model, str) and model.startswith("offline-"):
        raise ParameterError(
            f"llm_backend {backend!r} would send the offline model name {model!r} to the provider "
            f"(chapter {chapter.name}): add -p model <the provider's model name>"
        )
    if spec.key_env and not os.environ.get(spec.key_env):
        raise MissingCredentialsError(spec.name, spec.key_env)
    if backend in ("compatible", "azure") and not (base_url or os.environ.get(spec.base_url_env or "")):
        raise ParameterError(
            f"llm_backend {backend!r} needs an endpoint (chapter {chapter.name}): add -p base_url https://... "
            f"or set {spec.base_url_env}"
        )
    if not (model or spec.default_model):
        raise ParameterError(f"llm_backend {backend!r} needs a model name (chapter {chapter.name}): add -p model NAME")
    if importlib.util.find_spec("openai") is None:
        raise MissingDependencyError(
            f"llm_backend {backend!r} needs the OpenAI client: pip install 'ag2-agentops-cookbook[openai]'"
        )


def _check_one(chapter: Chapter, values: Mapping[str, Any]) -> None:
    _check_numbers(chapter.name, values)
    backend = str(values.get("llm_backend") or "offline").strip().lower()
    model, base_url = values.get("model") or None, values.get("base_url") or None
    if backend == "offline":
        if base_url:
            raise ParameterError(
                f"-p base_url {short(base_url)} needs a real backend (chapter {chapter.name} runs offline): "
                "add -p llm_backend compatible"
            )
    elif backend == "replay":
        _check_replay(chapter, str(values.get("cassette") or ""))
    else:
        _check_real(chapter, backend, model, base_url)


def check_providers(chapters: Sequence[Chapter], typed: Mapping[str, Mapping[str, Any]]) -> None:
    """Check each chapter's provider parameters in this process, before any kernel starts.

    Raises:
        MissingCredentialsError: a key variable is not set (the message names it).
        ParameterError: a missing endpoint, model or cassette, an offline model name sent to a real
            provider, a negative price or ``max_tokens``.
        MissingDependencyError: the OpenAI client is not installed for a real backend.
    """
    for chapter in chapters:
        _check_one(chapter, _provider_values(chapter, typed.get(chapter.name, {})))


def _server_fields(server: Any) -> tuple[str, str]:
    if isinstance(server, tuple):
        return str(server[0]), str(server[1])
    if isinstance(server, Mapping):
        return str(server["base_url"]), str(server["model"])
    return str(server.base_url), str(server.model)


@contextmanager
def _started(local_model: Any, **options: Any) -> Iterator[Any]:
    """``start()``/``stop()`` as a context; a server that was already running is left running."""
    was_running = local_model.status() if hasattr(local_model, "status") else None
    info = local_model.start(**options)
    try:
        yield info
    finally:
        if not was_running:
            local_model.stop()


@contextmanager
def local_model_parameters(**options: Any) -> Iterator[dict[str, str]]:
    """Start the local real model (``agentops.local_model``) and yield the ``-p`` values that use it.

    The key variable the ``compatible`` backend reads holds a placeholder for the duration of the block
    (the local server ignores it, and a real key must not be sent to it).

    Raises:
        MissingDependencyError: the local model helper or its extra is not installed.
    """
    try:
        local_model = importlib.import_module("agentops.local_model")
    except ImportError as exc:
        raise MissingDependencyError(
            f"--real needs the local model helper (agentops.local_model): {exc}; "
            "install the local model extra, or pass -p llm_backend/-p base_url for a server you run"
        ) from None
    running = getattr(local_model, "running", None)
    if running is None and hasattr(local_model, "start") and hasattr(local_model, "stop"):
        running = functools.partial(_started, local_model)
    if running is None:
        raise ConfigError("--real: agentops.local_model has neither running() nor start()/stop(); update the package")
    with running(**options) as server, local_key():
        base_url, model = _server_fields(server)
        yield {"llm_backend": "compatible", "base_url": base_url, "model": model}
