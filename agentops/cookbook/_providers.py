"""Provider parameters every chapter shares, checked before any kernel starts.

A chapter that talks to a model declares the same seven parameters in its ``parameters`` cell, so one
``-p`` reaches every chapter of a run. Before a kernel starts, the runner builds each distinct real
provider with :func:`agentops.models.model_config` in its own process: a missing key, endpoint or
model fails there with one line naming the variable or parameter to set, and nothing is executed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentops.cookbook._chapters import Chapter, short
from agentops.errors import ConfigError, MissingDependencyError, ParameterError

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


def _check_one(chapter: Chapter, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Raise when this chapter's provider cannot be built; return the key of a real provider to build."""
    _check_numbers(chapter.name, values)
    backend = str(values.get("llm_backend") or "offline").strip().lower()
    model, base_url = values.get("model") or None, values.get("base_url") or None
    if backend == "offline":
        if base_url:
            raise ParameterError(
                f"-p base_url {short(base_url)} needs a real backend (chapter {chapter.name} runs offline): "
                "add -p llm_backend compatible"
            )
        return None
    if backend == "replay":
        cassette = values.get("cassette") or ""
        path = Path(cassette) if Path(cassette).is_absolute() else chapter.path.parent / cassette
        if not cassette or not path.is_file():
            raise ParameterError(
                f"llm_backend 'replay' needs a recorded cassette (chapter {chapter.name}): "
                f"-p cassette {short(cassette) if cassette else '<file>'} "
                f"{'does not exist' if cassette else 'is missing'}; record one against a real backend first"
            )
        return None
    if isinstance(model, str) and model.startswith("offline-"):
        raise ParameterError(
            f"llm_backend {backend!r} would send the offline model name {model!r} to the provider "
            f"(chapter {chapter.name}): add -p model <the provider's model name>"
        )
    return (backend, model, base_url)


def check_providers(chapters: Sequence[Chapter], typed: Mapping[str, Mapping[str, Any]]) -> None:
    """Build each distinct real provider the run needs, in this process, before any kernel starts.

    Raises:
        MissingCredentialsError: a key variable is not set (the message names it).
        ParameterError / ConfigError: a bad base URL, model or price, or a missing cassette.
        MissingDependencyError: the OpenAI client is not installed for a real backend.
    """
    seen: set[tuple[Any, ...]] = set()
    for chapter in chapters:
        key = _check_one(chapter, _provider_values(chapter, typed.get(chapter.name, {})))
        if key is None or key in seen:
            continue
        seen.add(key)
        from agentops.models import model_config

        backend, model, base_url = key
        model_config(backend, model, base_url)


def _server_fields(server: Any) -> tuple[str, str]:
    if isinstance(server, tuple):
        return str(server[0]), str(server[1])
    return str(server.base_url), str(server.model)


@contextmanager
def local_model_parameters(**options: Any) -> Iterator[dict[str, str]]:
    """Start the local real model (``agentops.local_model.running``) and yield the ``-p`` values using it.

    The key variable the ``compatible`` backend checks is set to a placeholder when unset (the local
    server ignores it) for the duration of the block.

    Raises:
        MissingDependencyError: the local model helper or its extra is not installed.
    """
    try:
        from agentops import local_model
    except ImportError as exc:
        raise MissingDependencyError(
            f"--real needs the local model helper (agentops.local_model): {exc}; "
            "install the local model extra, or pass -p llm_backend/-p base_url for a server you run"
        ) from None
    running = getattr(local_model, "running", None)
    if running is None:
        raise ConfigError("--real: agentops.local_model has no running() helper; update the package")
    saved = os.environ.get("OPENAI_API_KEY")
    with running(**options) as server:
        base_url, model = _server_fields(server)
        os.environ.setdefault("OPENAI_API_KEY", _LOCAL_KEY)
        try:
            yield {"llm_backend": "compatible", "base_url": base_url, "model": model}
        finally:
            if saved is None:
                os.environ.pop("OPENAI_API_KEY", None)
