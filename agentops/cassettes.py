"""Cassettes: record a session with any OpenAI-compatible server once, replay it offline, deterministically.

Built on vcrpy's cassette format and request matching (a cassette is an ordinary vcrpy YAML file that
``pytest-recording`` / ``vcr.use_cassette`` can also read), wired in as an ``httpx2`` transport under
the OpenAI SDK that AG2 uses. vcrpy's own global patching hooks ``httpx2`` too, and works with AG2 in
tests (``@pytest.mark.vcr``); a notebook cannot wrap all its cells in a ``with`` block, so the
``replay`` backend of :func:`agentops.models.model_config` puts a :class:`CassetteTransport` on the
config itself instead, without patching anything globally.

* **Matching** is on the method, the path and a canonical body (:func:`canonical_body`): JSON with
  sorted keys, volatile fields dropped (``model``, sampling knobs such as ``temperature`` and ``seed``,
  ``user``, ``metadata``...), tool-call ids
  numbered by first appearance, and the same redaction applied as when recording — so a request
  replays whatever the host, the key or the ids of the session.
* **Redaction** runs before anything is written: every string in request and response bodies goes
  through :func:`agentops.guardrails.redact`, and credentials headers are dropped, so a key never
  reaches a committed cassette.
* **A miss** raises :class:`CassetteMiss` naming the request (path, message count, last message) and
  the closest recorded request, with the fix (re-record).
* Interactions replay in recorded order when the same request was recorded more than once.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx2

from agentops import _identity  # noqa: F401
from agentops.errors import ConfigError, MissingDependencyError

__all__ = [
    "CassetteMiss",
    "CassetteTransport",
    "canonical_body",
    "forget_cassette",
    "load_interactions",
    "open_cassette",
]

_VOLATILE_KEYS = frozenset(  # sampling knobs too: a replay returns the recorded answer whatever they are
    {
        "temperature",
        "top_p",
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "model",
        "user",
        "metadata",
        "stream_options",
        "store",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
    }
)
_DROP_HEADERS = (
    "authorization",
    "api-key",
    "x-api-key",
    "cookie",
    "set-cookie",
    "openai-organization",
    "openai-project",
)
_ID_KEYS = ("id", "tool_call_id")


class CassetteMiss(ConfigError):
    """Replay found no recorded response for a request: the code or its inputs changed since recording."""


def _vcr() -> Any:
    try:
        import vcr  # noqa: F401
        from vcr import matchers
        from vcr.cassette import Cassette
        from vcr.persisters.filesystem import FilesystemPersister
        from vcr.record_mode import RecordMode
        from vcr.request import Request
        from vcr.serializers import yamlserializer
    except ImportError:
        raise MissingDependencyError(
            "cassettes need vcrpy: pip install 'ag2-agentops-cookbook[cassettes]' (or pip install vcrpy)"
        ) from None
    return Cassette, FilesystemPersister, RecordMode, Request, yamlserializer, matchers


def _redact_tree(value: Any) -> Any:
    from agentops.guardrails import redact

    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redact_tree(v) for v in value]
    if isinstance(value, dict):
        return {k: _redact_tree(v) for k, v in value.items()}
    return value


def _number_ids(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, list):
        return [_number_ids(v, ids) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in _ID_KEYS and isinstance(v, str):
                v = ids.setdefault(v, f"id{len(ids)}")
            out[k] = _number_ids(v, ids)
        return out
    return value


def canonical_body(body: bytes | str | None) -> str:
    """The body as it is matched: canonical JSON without volatile fields, ids numbered, redacted.

    Non-JSON bodies are matched as their redacted text.
    """
    if body is None:
        return ""
    return _canonical(body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body))


@lru_cache(maxsize=4096)  # a replay compares every recorded body on every request: redact each once
def _canonical(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return _redact_tree(text)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in _VOLATILE_KEYS}
    return json.dumps(_redact_tree(_number_ids(data, {})), sort_keys=True, ensure_ascii=False)


def _canonical_matcher(r1: Any, r2: Any) -> None:
    if canonical_body(r1.body) != canonical_body(r2.body):
        raise AssertionError("canonical bodies differ")


def _pretty(raw: bytes | str | None) -> str:
    """Redacted, indented JSON (readable diffs of committed cassettes), else redacted text."""
    if raw is None:
        return ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else raw
    try:
        return json.dumps(_redact_tree(json.loads(text)), indent=1, ensure_ascii=False, sort_keys=True)
    except ValueError:
        return _redact_tree(text)


def _scrub_request(request: Any) -> Any:
    for name in list(request.headers):
        if name.lower() in _DROP_HEADERS or name.lower().startswith("x-stainless"):
            del request.headers[name]
    request.body = _pretty(request.body).encode()
    return request


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    response["headers"] = {k: v for k, v in response.get("headers", {}).items() if k.lower() not in _DROP_HEADERS}
    body = response.get("body", {}).get("string")
    response["body"] = {"string": _pretty(body)}
    response["headers"].pop("content-length", None)
    response["headers"].pop("Content-Length", None)
    response["headers"].pop("content-encoding", None)
    return response


def _preview(body: bytes | str | None) -> str:
    try:
        data = json.loads(body or b"")
        msgs = data.get("messages") or []
        last = msgs[-1] if msgs else {}
        content = last.get("content")
        if not isinstance(content, str):
            content = json.dumps(content)[:60]
        return f"{len(msgs)} messages, last {last.get('role', '?')}: {' '.join(content.split())[:80]!r}"
    except (ValueError, AttributeError, TypeError):
        return repr((body or b"")[:80])


class CassetteTransport(httpx2.AsyncBaseTransport):
    """Record real exchanges to a cassette, or replay them (``mode="record"`` / ``"replay"``).

    Recording starts a fresh cassette (an existing file is replaced) and saves after every exchange,
    so an interrupted session still leaves a valid cassette. ``metadata`` (e.g. base_url, model) is
    stored in the file. Safe under asyncio (one event loop); not shared across threads.
    """

    def __init__(
        self,
        path: str | Path,
        mode: str = "replay",
        *,
        inner: httpx2.AsyncBaseTransport | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if mode not in ("record", "replay"):
            raise ConfigError(f"cassette mode {mode!r} is not one of 'record', 'replay'")
        cassette_cls, self._persister, record_mode, self._request_cls, self._serializer, matchers = _vcr()
        self.path = Path(path)
        self.mode = mode
        if mode == "replay" and not self.path.is_file():
            raise ConfigError(
                f"cassette {str(self.path)!r} does not exist; record it first with a real backend and "
                "cassette=... (see agentops.cassettes)"
            )
        if mode == "record":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.unlink(missing_ok=True)
        self._inner = inner if inner is not None else (httpx2.AsyncHTTPTransport() if mode == "record" else None)
        self._cassette = cassette_cls.load(
            path=str(self.path),
            serializer=self._serializer,
            record_mode=record_mode.NONE if mode == "replay" else record_mode.NEW_EPISODES,
            match_on=(matchers.method, matchers.path, _canonical_matcher),
            # a recorded cassette is already scrubbed; matching redacts both sides (canonical_body)
            before_record_request=_scrub_request if mode == "record" else None,
            before_record_response=_scrub_response if mode == "record" else None,
        )
        self.metadata: dict[str, Any] = dict(self._loaded_metadata() if mode == "replay" else (metadata or {}))
        self.loaded_mtime = self.path.stat().st_mtime_ns if mode == "replay" else None

    def _loaded_metadata(self) -> dict[str, Any]:
        loaded = self._persister.load_cassette(str(self.path), serializer=self._serializer)
        return loaded[2] if len(loaded) > 2 else {}

    def __len__(self) -> int:
        return len(self._cassette)

    @property
    def all_played(self) -> bool:
        """True once every recorded interaction was replayed."""
        return self._cassette.all_played

    async def aclose(self) -> None:
        if self._inner is not None:
            await self._inner.aclose()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        raw = await request.aread()
        vreq = self._request_cls(request.method, str(request.url), raw, dict(request.headers))
        if self.mode == "replay":
            return self._replay(request, vreq)
        real = await self._inner.handle_async_request(request)
        content = await real.aread()
        await real.aclose()
        headers: dict[str, list[str]] = {}
        for k, v in real.headers.multi_items():
            headers.setdefault(k, []).append(v)
        self._cassette.append(
            vreq,
            {
                "status": {"code": real.status_code, "message": real.reason_phrase},
                "headers": headers,
                "body": {"string": content},
            },
        )
        self._save()
        return httpx2.Response(
            real.status_code,
            headers=[
                (k, v) for k, v in real.headers.multi_items() if k.lower() not in ("content-length", "content-encoding")
            ],
            content=content,
            request=request,
        )

    def _replay(self, request: httpx2.Request, vreq: Any) -> httpx2.Response:
        if self._cassette.can_play_response_for(vreq):
            recorded = self._cassette.play_response(vreq)
        elif vreq in self._cassette:  # asked again after every recording of it was played: repeat the last
            recorded = self._cassette.responses_of(vreq)[-1]
        else:
            raise self._miss(vreq)
        body = recorded["body"]["string"]
        headers = [
            (k, v)
            for k, vs in recorded.get("headers", {}).items()
            for v in vs
            if k.lower() not in ("content-length", "content-encoding")
        ]
        return httpx2.Response(
            recorded["status"]["code"],
            headers=headers,
            content=body if isinstance(body, bytes) else str(body).encode(),
            request=request,
        )

    def _miss(self, vreq: Any) -> CassetteMiss:
        wanted = canonical_body(vreq.body)
        same_path = [r for r in self._cassette.requests if r.path == vreq.path]
        closest = ""
        if same_path:
            best = max(same_path, key=lambda r: _common_prefix(canonical_body(r.body), wanted))
            n = _common_prefix(canonical_body(best.body), wanted)
            closest = f"; the closest recorded request ({_preview(best.body)}) differs after character {n}"
        return CassetteMiss(
            f"cassette {self.path.name!r} has no response for {vreq.method} {vreq.path} with "
            f"{_preview(vreq.body)}{closest}; the code or its inputs changed since recording: "
            "re-record the cassette against a real server (model_config(<backend>, ..., cassette=path))"
        )

    def _save(self) -> None:
        cassette = {"requests": self._cassette.requests, "responses": self._cassette.responses}
        if self.metadata:
            cassette["metadata"] = self.metadata
        self._persister.save_cassette(str(self.path), cassette, serializer=self._serializer)


_OPEN: dict[tuple[str, str], CassetteTransport] = {}


def open_cassette(
    path: str | Path,
    mode: str,
    *,
    inner: httpx2.AsyncBaseTransport | None = None,
    metadata: dict[str, Any] | None = None,
) -> CassetteTransport:
    """The process-wide :class:`CassetteTransport` for ``path`` in ``mode``, created on first use.

    Every config of a session built with the same cassette shares one recorder (or player), so a
    notebook that builds several configs records one ordered cassette and replays it in order.
    """
    key = (str(Path(path).resolve()), mode)
    tape = _OPEN.get(key)
    stale = tape is not None and mode == "replay" and tape.loaded_mtime != Path(path).stat().st_mtime_ns
    if tape is None or stale:  # a re-recorded cassette is loaded again
        tape = _OPEN[key] = CassetteTransport(path, mode, inner=inner, metadata=metadata)
    return tape


def forget_cassette(path: str | Path) -> None:
    """Drop the process-wide recorder and player of ``path``: the next :func:`open_cassette` starts from
    the file again (what a test needs — each replays the cassette from its first exchange)."""
    resolved = str(Path(path).resolve())
    for mode in ("record", "replay"):
        _OPEN.pop((resolved, mode), None)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def load_interactions(path: str | Path) -> list[dict[str, Any]]:
    """The recorded exchanges of a cassette as plain dicts (request body JSON, response body JSON)."""
    _, persister, _, _, serializer, _ = _vcr()
    requests, responses, *_ = persister.load_cassette(str(path), serializer=serializer)
    out = []
    for req, resp in zip(requests, responses, strict=False):
        body = resp["body"]["string"]
        try:
            req_json, resp_json = json.loads(req.body or b"{}"), json.loads(body or b"{}")
        except ValueError:
            req_json, resp_json = {}, {}
        out.append(
            {
                "method": req.method,
                "path": req.path,
                "status": resp["status"]["code"],
                "request": req_json,
                "response": resp_json,
            }
        )
    return out
