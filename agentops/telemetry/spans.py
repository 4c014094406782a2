"""Spans: redaction at the export boundary, a JSON-lines exporter and its crash-safe batching.

Every span AG2's ``TelemetryMiddleware`` (and the telemetry itself) finishes passes through
:class:`RedactingSpanProcessor` before any exporter sees it. :class:`JsonLinesSpanExporter` appends
one JSON object per span to a file; :func:`batch_processor` exports from a background thread at least
every second, so a process killed with ``kill -9`` loses at most the last second of spans, and the
tracer provider's exit hook (``atexit``) exports the rest on a normal exit.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from agentops.telemetry._redact import _CLEAN, _CLEAN_SPAN_NAMES, clean_str, redact, span_name

__all__ = [
    "FLUSH_INTERVAL_S",
    "JsonLinesSpanExporter",
    "RedactingSpanProcessor",
    "batch_processor",
    "span_record",
]

#: Longest time a finished span waits in memory before a background export (seconds).
FLUSH_INTERVAL_S = 1.0


def clean_attrs(attrs: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Span or event attributes with free text redacted and names checked; ``None`` if unchanged.

    Reads the plain dict behind the SDK's attribute mapping when there is one (see :func:`_plain`), so
    the usual span — numbers and strings already known clean — costs one pass of set lookups.
    """
    if not attrs:
        return None
    items = _plain(attrs)
    out: dict[str, Any] | None = None
    clean = _CLEAN
    for key, value in items.items():
        cls = value.__class__
        if cls is str:
            if value in clean:
                continue
            new: Any = clean_str(key, value)
        elif cls is tuple and value and value[0].__class__ is str:
            new = tuple(v if v in clean else clean_str(key, v) for v in value)
        else:
            continue
        if new != value:
            if out is None:
                out = dict(items)
            out[key] = new
    return out


def _plain(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The plain ``dict`` behind OpenTelemetry's ``BoundedAttributes`` (or a read-only view of it), else
    ``attrs`` itself.

    The SDK's mapping answers ``items()`` through its Python ``__iter__``/``__getitem__``, one call per
    attribute; its ``_dict`` field (SDK-internal, no public accessor) iterates in C. Any other mapping
    is read as it is, so an SDK that renames the field only loses the speed-up
    (``tests/test_telemetry_spans.py`` checks the pinned SDK keeps it).
    """
    inner = getattr(attrs, "_dict", None)
    return inner if inner.__class__ is dict else attrs


def _span_attrs(span: ReadableSpan) -> Mapping[str, Any] | None:
    """A finished span's attributes without the read-only view ``ReadableSpan.attributes`` builds per
    access (the SDK-internal ``_attributes``; the public property when it is absent)."""
    raw = getattr(span, "_attributes", _MISSING)
    return span.attributes if raw is _MISSING else raw


_MISSING = object()


class RedactingSpanProcessor(SpanProcessor):
    """Wraps a span processor and redacts every finished span before it is exported.

    Free-text attributes (captured messages, tool arguments and results, exception messages and stack
    traces, anything a caller adds), event attributes and the status description pass through
    :func:`~agentops.telemetry.redact`; vocabulary attributes (agent, model, provider, tool names,
    outcome, entity type, ...) and the names in span names (``chat <model>``) are kept whole unless a
    value is itself a secret, which then becomes ``[REDACTED]``. A span that needs no
    change is forwarded as is, so the usual cost is a few set lookups per span.
    """

    def __init__(self, inner: SpanProcessor) -> None:
        self.inner = inner

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        attrs = clean_attrs(_span_attrs(span))
        changed = attrs is not None
        name = span.name
        if name not in _CLEAN_SPAN_NAMES and name not in _CLEAN:  # "chat <model>": a secret part goes whole
            clean_name = span_name(name)
            if clean_name != name:
                name, changed = clean_name, True
        events = span.events
        if events:
            cleaned = []
            for ev in events:
                ev_attrs = clean_attrs(ev.attributes)
                if ev_attrs is not None:
                    changed = True
                    ev = Event(ev.name, ev_attrs, ev.timestamp)
                cleaned.append(ev)
            events = tuple(cleaned)
        status = span.status
        if status.description:
            desc = redact(status.description)
            if desc != status.description:
                status, changed = Status(status.status_code, desc), True
        if changed:
            span = ReadableSpan(
                name=name,
                context=span.context,
                parent=span.parent,
                resource=span.resource,
                attributes=attrs if attrs is not None else span.attributes,
                events=events,
                links=span.links,
                kind=span.kind,
                status=status,
                start_time=span.start_time,
                end_time=span.end_time,
                instrumentation_scope=span.instrumentation_scope,
            )
        self.inner.on_end(span)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """A finished span as a plain JSON-ready dict (the JSONL line format and the store's row source)."""
    ctx = span.context
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": format(ctx.trace_id, "032x") if ctx else None,
        "span_id": format(ctx.span_id, "016x") if ctx else None,
        "parent_span_id": format(parent.span_id, "016x") if parent else None,
        "kind": span.kind.name,
        "start_time_ns": span.start_time,
        "end_time_ns": span.end_time,
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "attributes": _jsonable(dict(span.attributes or {})),
        "events": [
            {"name": e.name, "time_ns": e.timestamp, "attributes": _jsonable(dict(e.attributes or {}))}
            for e in span.events
        ],
        "service": (span.resource.attributes.get("service.name") if span.resource else None),
    }


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span as one JSON line to a file (see :func:`span_record` for the schema).

    Thread-safe; every batch is written and flushed to the operating system under a lock, so a reader
    never sees half a line from a live writer, and a process killed afterwards loses nothing written.
    A file left with a torn last line by a killed writer is continued on a fresh line, so the torn
    piece never swallows the next record; :meth:`TraceStore.from_jsonl` skips it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        torn = _ends_torn(self.path)
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")
        if torn:
            self._file.write("\n")
            self._file.flush()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(s), default=str) + "\n" for s in spans)
        with self._lock:
            if self._file is None:
                return SpanExportResult.FAILURE
            self._file.write(lines)
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _ends_torn(path: Path) -> bool:
    """True if ``path`` exists, is not empty and does not end with a newline."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except FileNotFoundError:
        return False


def batch_processor(exporter: SpanExporter) -> BatchSpanProcessor:
    """A ``BatchSpanProcessor`` that exports at least every :data:`FLUSH_INTERVAL_S` seconds."""
    return BatchSpanProcessor(exporter, schedule_delay_millis=FLUSH_INTERVAL_S * 1000)
