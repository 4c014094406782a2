"""``model_config(backend, ...)``: the one switch between the offline model, real providers and replay.

Every config it returns is an AG2 ``ModelConfig``. For real OpenAI-compatible backends it returns a
:class:`ProviderConfig` (AG2's ``OpenAIConfig`` with a plain-string provider name) that

* sends ``max_tokens`` on every call (default :data:`DEFAULT_MAX_TOKENS`), so a small local model
  cannot run to thousands of tokens;
* talks through :class:`agentops.compat.CompatTransport`, which falls back from ``json_schema`` to
  ``json_object`` to a prompt-only request when a server rejects structured output, and sends
  ``content: ""`` to servers that reject ``null``;
* checks every answer's tool-call arguments (:func:`agentops.toolguard.check_tool_calls`): arguments
  that are not a JSON object raise a retryable ``MalformedOutputError`` before AG2 runs the tool;
* records every exchange to a cassette when ``cassette=`` is given (or ``AGENTOPS_CASSETTE`` is set),
  and the ``replay`` backend plays such a cassette back offline;
* refuses to be built when ``AGENTOPS_ALLOW_MODEL_REQUESTS=0`` (the test suite sets it).

Example::

    cfg = model_config("compatible", "smollm2", base_url="http://127.0.0.1:8081/v1", max_tokens=128)
    cfg = model_config("replay", cassette="notebooks/cassettes/00_quickstart.yaml")
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ag2.config import ModelConfig

from agentops import _identity  # noqa: F401
from agentops.compat import CompatTransport, ModelRequestsForbidden, forbid_message, model_requests_allowed
from agentops.errors import ConfigError, MissingCredentialsError, MissingDependencyError

__all__ = ["BACKENDS", "CASSETTE_ENV", "DEFAULT_MAX_TOKENS", "model_config", "provider_name"]

DEFAULT_MAX_TOKENS = 512
CASSETTE_ENV = "AGENTOPS_CASSETTE"
_REPLAY_URL = "http://replay.invalid/v1"


def provider_name(provider: Any) -> str:
    """A provider as a plain string: ``ModelProvider.OPENAI`` → ``"openai"``; ``None`` → ``""``."""
    if provider is None:
        return ""
    value = getattr(provider, "value", provider)
    return str(value)


@dataclass(frozen=True)
class _Backend:
    name: str
    description: str
    key_env: str | None = None  # required API key variable
    key_optional_env: str | None = None  # optional key variable (local servers)
    base_url_env: str | None = None
    default_base_url: str | None = None
    default_model: str | None = None


BACKENDS: dict[str, _Backend] = {
    b.name: b
    for b in (
        _Backend("offline", "deterministic local stand-in (no network, no key)", default_model="offline-1"),
        _Backend(
            "openai",
            "OpenAI API",
            key_env="OPENAI_API_KEY",
            base_url_env="OPENAI_BASE_URL",
            default_model="gpt-4o-mini",
        ),
        _Backend(
            "azure",
            "Azure OpenAI (v1-compatible endpoint)",
            key_env="AZURE_OPENAI_API_KEY",
            base_url_env="AZURE_OPENAI_ENDPOINT",
            default_model="gpt-4o-mini",
        ),
        _Backend(
            "ollama",
            "Ollama's OpenAI-compatible server",
            base_url_env="OLLAMA_BASE_URL",
            default_base_url="http://localhost:11434/v1",
            default_model="llama3.2",
        ),
        _Backend(
            "vllm",
            "vLLM's OpenAI-compatible server",
            key_optional_env="VLLM_API_KEY",
            base_url_env="VLLM_BASE_URL",
            default_base_url="http://localhost:8000/v1",
        ),
        _Backend(
            "compatible",
            "any OpenAI-compatible endpoint (base_url required; key optional)",
            key_optional_env="OPENAI_API_KEY",
            base_url_env="OPENAI_BASE_URL",
        ),
        _Backend("replay", "a recorded cassette played back offline (cassette= required)"),
    )
}


def _provider_config_class() -> type:
    try:
        from ag2.config import OpenAIConfig
        from openai import AsyncOpenAI  # noqa: F401  (ag2's placeholder hides the missing SDK until use)
    except ImportError:
        raise MissingDependencyError(
            "real backends need the OpenAI client: pip install 'ag2-agentops-cookbook[openai]' "
            "(or pip install 'ag2[openai]')"
        ) from None

    global ProviderConfig
    if ProviderConfig is None:

        @dataclass(slots=True, repr=False)
        class _ProviderConfig(OpenAIConfig):
            """AG2's ``OpenAIConfig`` whose ``provider`` is a plain string naming the backend.

            Its repr never shows the key (a notebook that prints its config must not publish it).
            """

            backend: str = "compatible"

            @property
            def provider(self) -> str:  # type: ignore[override]
                return self.backend

            def create(self) -> Any:
                """AG2's OpenAI client, whose answers' tool-call arguments are checked before any tool runs."""
                from agentops.toolguard import checked_client

                return checked_client(OpenAIConfig.create(self))

            def __repr__(self) -> str:
                return (
                    f"ProviderConfig(backend={self.backend!r}, model={self.model!r}, base_url={self.base_url!r}, "
                    f"max_tokens={self.max_tokens!r})"
                )

        _ProviderConfig.__name__ = _ProviderConfig.__qualname__ = "ProviderConfig"
        ProviderConfig = _ProviderConfig
    return ProviderConfig


ProviderConfig: Any = None  # built on first use: importing it needs the optional OpenAI SDK


def _check_max_tokens(max_tokens: Any) -> None:
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise ConfigError(f"max_tokens must be a positive int, got {max_tokens!r}; e.g. max_tokens=256")


def model_config(
    backend: str = "offline",
    model: str | None = None,
    base_url: str | None = None,
    *,
    max_tokens: int | None = None,
    cassette: str | Path | None = None,
    structured: str = "json_schema",
    **options: Any,
) -> ModelConfig:
    """Return the AG2 ``ModelConfig`` for a backend; the only switch a notebook needs.

    Args:
        backend: one of :data:`BACKENDS` (``"offline"``, ``"openai"``, ``"azure"``, ``"ollama"``,
            ``"vllm"``, ``"compatible"``, ``"replay"``).
        model: model name; each backend has a sensible default except ``vllm``/``compatible``.
        base_url: endpoint for OpenAI-compatible servers (else read from the backend's env variable).
        max_tokens: completion limit sent on every call (real backends default to
            :data:`DEFAULT_MAX_TOKENS`); the offline model cuts its replies at it too.
        cassette: a real backend records every exchange to this file; ``replay`` plays it back.
            Defaults to the ``AGENTOPS_CASSETTE`` environment variable.
        structured: the first structured-output mode to try (see :class:`agentops.compat.CompatTransport`).
        **options: for ``offline``, :class:`~agentops.models.OfflineModel` options (``seed``, ``rules``,
            ``latency_s``, ``faults``, ``sleep``); for real backends, ``OpenAIConfig`` options
            (``temperature``, ``timeout``, ``max_retries``, ``seed``, ``tool_choice``...), and
            ``transport``: the ``httpx2`` transport that sends requests (tests use ``httpx2.MockTransport``).

    Raises:
        ConfigError: unknown backend, bad max_tokens, missing model/base_url/cassette.
        ModelRequestsForbidden: a real backend while ``AGENTOPS_ALLOW_MODEL_REQUESTS=0``.
        MissingCredentialsError: the backend's key variable is not set (names the variable).
        MissingDependencyError: ``ag2[openai]`` (or vcrpy, for cassettes) is not installed.
    """
    spec = BACKENDS.get(str(backend).strip().lower())
    if spec is None:
        raise ConfigError(f"unknown llm backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    _check_max_tokens(max_tokens)
    if spec.name == "offline":
        return _offline(model, base_url, max_tokens, options)
    cassette = cassette or os.environ.get(CASSETTE_ENV) or None
    if spec.name == "replay":
        return _replay(model, cassette, max_tokens, structured, options)
    model = model or spec.default_model
    if not model:
        raise ConfigError(f"backend {spec.name!r} needs a model name: pass model='...'")
    base_url = base_url or (os.environ.get(spec.base_url_env) if spec.base_url_env else None) or spec.default_base_url
    if spec.name in ("compatible", "azure") and not base_url:
        raise ConfigError(
            f"backend {spec.name!r} needs an endpoint: pass base_url='https://...' or set {spec.base_url_env}"
        )
    if spec.name == "azure" and base_url and "/openai/v1" not in base_url:
        base_url = base_url.rstrip("/") + "/openai/v1/"
    api_key = _api_key(spec)
    cls = _provider_config_class()
    transport = options.pop("transport", None)  # a fake server in tests; None = the real network
    if transport is None and not model_requests_allowed():
        raise ModelRequestsForbidden(forbid_message(f"model_config({spec.name!r})"))
    inner = transport
    if cassette:
        from agentops.cassettes import open_cassette

        meta = {"backend": spec.name, "model": model, "max_tokens": max_tokens or DEFAULT_MAX_TOKENS}
        inner = open_cassette(cassette, "record", inner=inner, metadata=meta)
    return cls(
        model=model,
        api_key=api_key,
        base_url=base_url,
        max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
        http_client=_client(CompatTransport(inner, structured=structured, check_allowed=transport is None)),
        backend=spec.name,
        **options,
    )


def _offline(model: str | None, base_url: str | None, max_tokens: int | None, options: dict[str, Any]) -> Any:
    from agentops.models import OFFLINE_MODEL, OfflineModel

    if base_url is not None:
        raise ConfigError("the offline backend takes no base_url; drop it or pick a real backend")
    try:
        return OfflineModel(model or OFFLINE_MODEL, max_tokens=max_tokens, **options)
    except TypeError as exc:
        raise ConfigError(
            f"invalid offline model option: {exc}; valid: seed, rules, latency_s, sleep, faults, max_log, max_tokens"
        ) from None


def _replay(model: str | None, cassette: Any, max_tokens: int | None, structured: str, options: dict[str, Any]) -> Any:
    if not cassette:
        raise ConfigError(
            f"backend 'replay' needs a cassette: pass cassette='path.yaml' (papermill: -p cassette ...) "
            f"or set {CASSETTE_ENV}"
        )
    from agentops.cassettes import open_cassette

    cls = _provider_config_class()
    tape = open_cassette(cassette, "replay")
    meta = tape.metadata
    options.setdefault("max_retries", 0)
    return cls(
        model=model or meta.get("model") or "replay",
        api_key="replay",
        base_url=_REPLAY_URL,
        max_tokens=max_tokens or meta.get("max_tokens") or DEFAULT_MAX_TOKENS,
        http_client=_client(CompatTransport(tape, structured=structured, check_allowed=False)),
        backend=str(meta.get("backend") or "replay"),
        **options,
    )


def _api_key(spec: _Backend) -> str:
    if spec.key_env:
        api_key = os.environ.get(spec.key_env)
        if not api_key:
            raise MissingCredentialsError(spec.name, spec.key_env)
        return api_key
    if spec.key_optional_env:
        return os.environ.get(spec.key_optional_env) or "not-needed"
    return spec.name  # local servers ignore the key but the client requires one


def _client(transport: Any) -> Any:
    import httpx2

    return httpx2.AsyncClient(transport=transport, timeout=httpx2.Timeout(600.0, connect=10.0))
