"""What differs between OpenAI-compatible servers, handled once at the HTTP seam.

AG2's OpenAI client speaks the OpenAI dialect. Local servers (llama.cpp, llama-cpp-python, vLLM,
Ollama) each accept a different subset of it. :class:`CompatTransport` sits under the OpenAI SDK's
HTTP client (``httpx2``) and makes one conversation work on all of them, learning per server:

* **structured output** — a request with ``response_format: json_schema`` that the server rejects is
  re-sent with ``json_object`` (plus the schema), then with no ``response_format`` and the schema in a
  system instruction; in the two fallback modes the JSON object is extracted from the answer with
  :func:`agentops.jsonparse.find_json_objects` and the answer's text is replaced by it, so AG2's
  ``response_schema`` validation sees clean JSON;
* **``content: null``** — an assistant message that carried only tool calls is sent with
  ``content: ""`` once the server has rejected ``null``.

The structured-output chain is one :class:`StructuredFallback` — the only place that decides which
mode a server gets. The transport owns the chain of every HTTP config; code that asks for structured
output (the evals judge) reads it with :func:`structured_fallback` instead of keeping a second one, and
builds its own :class:`StructuredFallback` only for a config with no HTTP layer (the offline model).
What the chain learned is in :attr:`CompatTransport.notes` (one line per change), so a chapter can say
which fallback ran. The switch that forbids real model requests
(``AGENTOPS_ALLOW_MODEL_REQUESTS=0``) is checked here too, on every request.

Why a transport: AG2 builds a new client per ``ask`` but reuses the ``http_client`` of its
``OpenAIConfig``, so a transport is the one place that sees every request of every agent on a config,
and it composes with recording (:mod:`agentops.cassettes`), which sits beneath it.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import httpx2

from agentops import _identity  # noqa: F401
from agentops.errors import ConfigError
from agentops.jsonparse import find_json_objects

__all__ = [
    "ALLOW_ENV",
    "STRUCTURED_MODES",
    "CompatTransport",
    "ModelRequestsForbidden",
    "StructuredFallback",
    "model_requests_allowed",
    "structured_fallback",
]

ALLOW_ENV = "AGENTOPS_ALLOW_MODEL_REQUESTS"
STRUCTURED_MODES = ("json_schema", "json_object", "prompt")
_COMPAT_STATUSES = frozenset({400, 415, 422, 500, 501})
_INSTRUCTION = "Reply with only one JSON object, no prose, that matches this JSON schema:\n"


class ModelRequestsForbidden(ConfigError):
    """A real model request was attempted while ``AGENTOPS_ALLOW_MODEL_REQUESTS=0``."""


def model_requests_allowed() -> bool:
    """False when the environment forbids real model requests (tests, CI): ``AGENTOPS_ALLOW_MODEL_REQUESTS=0``."""
    return os.environ.get(ALLOW_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def forbid_message(what: str) -> str:
    return (
        f"{what}: real model requests are forbidden here ({ALLOW_ENV}=0, set by the test suite); "
        "use llm_backend='offline' or 'replay', or set the variable to 1 for a real-model run"
    )


def _schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("schema") or {}
    return None


def _with_instruction(messages: list[Any], schema: dict[str, Any]) -> list[Any]:
    note = _INSTRUCTION + json.dumps(schema, sort_keys=True)
    out = [dict(m) if isinstance(m, dict) else m for m in messages]
    if out and isinstance(out[0], dict) and out[0].get("role") == "system" and isinstance(out[0].get("content"), str):
        out[0]["content"] = f"{out[0]['content']}\n\n{note}"
    else:
        out.insert(0, {"role": "system", "content": note})
    return out


def _valid(obj: dict[str, Any], schema: dict[str, Any]) -> bool:
    import jsonschema

    try:
        jsonschema.validate(obj, schema)
    except (jsonschema.ValidationError, jsonschema.SchemaError):
        return False
    return True


class StructuredFallback:
    """The structured-output fallback chain: ``json_schema`` → ``json_object`` → ``prompt``, stepped once per refusal.

    ``mode`` only ever moves down the chain, so concurrent callers at worst both step once; ``notes``
    keeps one line per step (the reason included). Safe under asyncio and threads (one lock per chain).

    Args:
        start: the first mode to try.
        modes: the chain; a config without an HTTP layer has no ``json_object`` step.

    >>> chain = StructuredFallback(modes=("json_schema", "prompt"))
    >>> chain.step_down("ValueError: 400 bad request"), chain.mode, chain.step_down("again")
    (True, 'prompt', False)
    """

    def __init__(self, start: str = "json_schema", *, modes: tuple[str, ...] = STRUCTURED_MODES) -> None:
        if not modes or any(m not in STRUCTURED_MODES for m in modes):
            raise ConfigError(f"structured modes {modes!r}: each must be one of {STRUCTURED_MODES}")
        if start not in modes:
            raise ConfigError(f"structured={start!r} is not a mode; choose one of {modes}")
        self.modes = tuple(modes)
        self.mode = start
        self.notes: list[str] = []
        self._lock = threading.Lock()

    @property
    def structured(self) -> bool:
        """Whether the server is still asked for structured output (``json_schema`` or ``json_object``)."""
        return self.mode != "prompt"

    def step_down(self, reason: str, *, seen: str | None = None) -> bool:
        """Move to the next mode after a refusal; False when nothing is left to try.

        ``seen`` is the mode the refused request used: when another caller already stepped past it,
        nothing changes and the caller simply retries with the current mode (True).
        """
        with self._lock:
            if seen is not None and seen != self.mode:
                return True
            i = self.modes.index(self.mode)
            if i + 1 >= len(self.modes):
                return False
            new = self.modes[i + 1]
            self.notes.append(f"{reason} on response_format {self.mode}: falling back to {new}")
            self.mode = new
            return True

    def __repr__(self) -> str:
        return f"StructuredFallback(mode={self.mode!r}, modes={self.modes})"


def structured_fallback(config: Any) -> StructuredFallback | None:
    """The chain the HTTP layer of ``config`` keeps for its server; ``None`` when it has no such layer."""
    client = getattr(config, "http_client", None)
    transport = getattr(client, "_transport", None)
    return transport.fallback if isinstance(transport, CompatTransport) else None


class CompatTransport(httpx2.AsyncBaseTransport):
    """An ``httpx2`` transport that adapts chat-completion requests to what the server accepts.

    Args:
        inner: the transport that sends requests (default: a new ``httpx2.AsyncHTTPTransport``).
        structured: first structured-output mode to try (``"json_schema"``, ``"json_object"`` or
            ``"prompt"``); it only ever steps down, per server, when the server rejects a mode.
        null_content: ``"auto"`` (send ``null``, switch to ``""`` once rejected) or ``"empty"``.
        allow_real: check :func:`model_requests_allowed` before sending (off for replay).

    Safe under asyncio: the learned modes only move one way, so concurrent requests at worst both
    step down once.
    """

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport | None = None,
        *,
        structured: str = "json_schema",
        null_content: str = "auto",
        check_allowed: bool = True,
    ) -> None:
        self.fallback = StructuredFallback(structured)
        if null_content not in ("auto", "empty"):
            raise ConfigError(f"null_content={null_content!r}; choose 'auto' or 'empty'")
        self._inner = inner if inner is not None else httpx2.AsyncHTTPTransport()
        self.null_as_empty = null_content == "empty"
        self.check_allowed = check_allowed
        self.notes = self.fallback.notes  # one list: the chain's steps and the content-null switch

    @property
    def structured(self) -> str:
        """The structured-output mode this server gets now (read from :attr:`fallback`)."""
        return self.fallback.mode

    async def aclose(self) -> None:
        await self._inner.aclose()

    def _rewrite(self, body: dict[str, Any], schema: dict[str, Any] | None, mode: str) -> dict[str, Any]:
        out = dict(body)
        if self.null_as_empty:
            out["messages"] = [
                {**m, "content": ""}
                if isinstance(m, dict) and m.get("role") == "assistant" and m.get("content") is None
                else m
                for m in body.get("messages", [])
            ]
        if schema is not None and mode != "json_schema":
            out["messages"] = _with_instruction(out.get("messages", []), schema)
            if mode == "json_object":
                out["response_format"] = {"type": "json_object", "schema": schema}
            else:
                out.pop("response_format", None)
        return out

    def _step_down(self, body: dict[str, Any], schema: dict[str, Any] | None, status: int, mode: str) -> bool:
        """Change one learned mode after a rejection; False when nothing is left to try."""
        if status not in _COMPAT_STATUSES:
            return False
        has_null = any(
            isinstance(m, dict) and m.get("role") == "assistant" and m.get("content") is None
            for m in body.get("messages", [])
        )
        if has_null and not self.null_as_empty:
            self.null_as_empty = True
            self.notes.append(f'HTTP {status} on an assistant message with content null: sending "" instead')
            return True
        if schema is not None:
            return self.fallback.step_down(f"HTTP {status}", seen=mode)
        return False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self.check_allowed and not model_requests_allowed():
            raise ModelRequestsForbidden(forbid_message(f"{request.method} {request.url}"))
        if request.method != "POST" or not request.url.path.endswith("/chat/completions"):
            return await self._inner.handle_async_request(request)
        raw = await request.aread()
        try:
            body = json.loads(raw)
        except ValueError:
            return await self._inner.handle_async_request(request)
        schema = _schema_of(body)
        while True:
            mode = self.fallback.mode
            response = await self._inner.handle_async_request(self._request(request, self._rewrite(body, schema, mode)))
            if response.status_code < 400 or not self._step_down(body, schema, response.status_code, mode):
                break
            await response.aread()
            await response.aclose()
        if schema is not None and mode != "json_schema" and response.status_code < 400 and not body.get("stream"):
            return await self._extracted(response, schema, request)
        return response

    @staticmethod
    def _request(original: httpx2.Request, body: dict[str, Any]) -> httpx2.Request:
        content = json.dumps(body).encode()
        headers = [(k, v) for k, v in original.headers.multi_items() if k.lower() != "content-length"]
        return httpx2.Request(
            original.method, original.url, headers=headers, content=content, extensions=original.extensions
        )

    async def _extracted(
        self, response: httpx2.Response, schema: dict[str, Any], request: httpx2.Request
    ) -> httpx2.Response:
        """The response with each choice's text replaced by the JSON object found in it (if any)."""
        raw = await response.aread()
        await response.aclose()
        try:
            data = json.loads(raw)
            for choice in data.get("choices", []):
                msg = choice.get("message") or {}
                objs = find_json_objects(msg.get("content") or "")
                best = next((o for o in objs if _valid(o, schema)), objs[0] if objs else None)
                if best is not None:
                    msg["content"] = json.dumps(best)
            raw = json.dumps(data).encode()
        except (ValueError, AttributeError, TypeError):
            pass
        headers = [
            (k, v) for k, v in response.headers.multi_items() if k.lower() not in ("content-length", "content-encoding")
        ]
        return httpx2.Response(
            response.status_code,
            headers=headers,
            content=raw,
            request=request,
            extensions={k: v for k, v in response.extensions.items() if k == "reason_phrase"},
        )
