"""Structured JSON logs through the standard :mod:`logging` module and ``python-json-logger``.

One JSON object per line, correlated with the current OpenTelemetry span (``trace_id``/``span_id``),
with secrets and PII redacted (see :mod:`agentops.telemetry._redact`). Never a format string.

Why :class:`JsonLogFormatter` overrides ``format``: ``python-json-logger``'s general path merges the
record's attributes with per-key checks, formats the timestamp through a ``datetime`` and encodes
through a Python ``default`` hook — about 25 µs a line, most of the telemetry's cost on a fast turn.
With the default configuration the formatter builds the same fields in one pass (the timestamp text is
cached per second) and, since every value is already cleaned into JSON-ready data, encodes with the
encoder alone — ``orjson`` (about ten times faster than the standard library's C encoder on a log
line: measured 0.7 against 8 µs), else a cached :class:`json.JSONEncoder`. Lines are always ASCII
(other characters escaped, as ``json.dumps`` does), so no line separator such as U+2028 can split a
record. Any other configuration (``static_fields``, ``rename_fields``, ...) takes the library's general
path unchanged.

Why :func:`emit` may bypass ``logging``: building a ``LogRecord`` and passing it through
``Logger.handle``, the handler's filter, lock and ``emit`` costs more than the line itself. When every
handler is one :func:`configure_json_logging` made (a plain stream or file handler, our formatter, our
filter), :func:`emit` writes the same line straight to each stream under the handler's lock; any
handler or filter of the application's own, propagation, or pytest's ``caplog`` gets a real record.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from typing import IO, Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from agentops.telemetry._redact import _CLEAN, SCALARS, clean_str, clean_value

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency; the standard library still works
    _orjson = None  # type: ignore[assignment]

__all__ = ["CorrelationFilter", "JsonLogFormatter", "configure_json_logging", "current_ids"]

LOGGER_NAME = "agentops.telemetry"
# A library never prints by itself: without this, Python's last-resort handler would write our WARNING
# records to stderr until the application configures logging.
logging.getLogger("agentops").addHandler(logging.NullHandler())


def current_ids() -> tuple[str | None, str | None]:
    """``(trace_id, span_id)`` of the current OpenTelemetry span as hex, or ``(None, None)``.

    Example:
        >>> current_ids()
        (None, None)
    """
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


class CorrelationFilter(logging.Filter):
    """Adds ``trace_id``/``span_id`` of the current span to every record that lacks them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "trace_id", None) is None:
            record.trace_id, record.span_id = current_ids()
        return True


class JsonLogFormatter(JsonFormatter):
    """One JSON object per line (``python-json-logger``), with secrets and PII redacted.

    Fields, in order: ``level``, ``logger``, ``message``, ``exc_info``/``stack_info`` when present,
    everything passed in ``extra=``, then ``timestamp`` (ISO 8601, UTC). Free text — the message,
    exception text, ``error``, ``request``, any field this package does not know — is redacted;
    vocabulary fields (``event``, ``agent``, ``model``, ``tool``, ``entity_type``, ``outcome``, ...)
    are kept whole unless a value is itself a secret; ``trace_id``/``span_id`` pass unchanged. Values of
    any type are written as JSON-ready data (a set as a sorted list, an object as its text), after
    redaction. Quotes, newlines and any unicode stay valid JSON.

    Keyword arguments go to ``python-json-logger``'s ``JsonFormatter``.

    Example:
        >>> record = logging.LogRecord("app", logging.INFO, "", 0, "mail %s", ("a@b.io",), None)
        >>> record.created, record.agent = 0.0, "support"
        >>> json.loads(JsonLogFormatter().format(record))
        {'level': 'INFO', 'logger': 'app', 'message': 'mail [EMAIL_ADDRESS]', 'agent': 'support', \
'timestamp': '1970-01-01T00:00:00.000000+00:00'}
    """

    def __init__(self, **kwargs: Any) -> None:
        self._lean = not kwargs
        kwargs.setdefault("timestamp", True)
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("reserved_attrs", None)
        super().__init__("{levelname}{name}{message}", style="{", **kwargs)
        self._second = -1
        self._second_text = ""
        self._heads: dict[tuple[int, str, str], tuple[str, str]] = {}  # -> (encoded head, level name)

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # a race here only recomputes the same text
            when = _dt.datetime.fromtimestamp(second, tz=_dt.timezone.utc)
            self._second_text, self._second = when.strftime("%Y-%m-%dT%H:%M:%S."), second
        return f"{self._second_text}{int((created - second) * 1_000_000):06d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line (see the class docstring for the fields)."""
        if not self._lean or isinstance(record.msg, dict):
            return super().format(record)
        data: dict[str, Any] = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exc_info"] = record.exc_text
        if record.stack_info:
            data["stack_info"] = self.formatStack(record.stack_info)
        attrs = record.__dict__
        own = attrs.get(_FIELDS)
        if own is not None and len(attrs) == _RECORD_SIZE + len(own):
            for key in own:  # a record from emit() that nothing added to: read just its fields
                data[key] = attrs[key]
        else:
            skip = self._skip_fields
            for key, value in attrs.items():
                if key not in skip and key[:1] != "_":
                    data[key] = value
        return self._finish(data, record.created)

    def _line(self, level: int, logger: str, msg: str, fields: dict[str, Any], created: float) -> str:
        """The line :meth:`format` writes for a record :func:`emit` would build, without the record.

        Fast path: the line's head — ``level``, ``logger`` and ``message`` — is encoded once per
        (level, logger, message) and reused while all three are known clean (the same check
        :meth:`process_log_record` makes), and only ``fields`` and the timestamp are encoded per line.
        The bytes are those of the general path (``tests/test_telemetry_logs.py`` compares them).
        """
        found = self._heads.get((level, logger, msg))
        clean = _CLEAN
        if (
            found is None
            or msg not in clean
            or logger not in clean
            or found[1] not in clean
            or not _HEAD_KEYS.isdisjoint(fields)
        ):
            data: dict[str, Any] = {"level": logging.getLevelName(level), "logger": logger, "message": msg}
            data.update(fields)
            line = self._finish(data, created)
            if found is None and len(self._heads) < _MAX_HEADS:
                self._remember_head(level, logger, msg)
            return line
        data = self.process_log_record(dict(fields))  # the head is clean already: only the fields
        second = int(created)
        if second != self._second:
            self._timestamp(created)
        data["timestamp"] = f"{self._second_text}{int((created - second) * 1_000_000):06d}+00:00"
        return found[0] + _dumps(data)[1:]

    def _remember_head(self, level: int, logger: str, msg: str) -> None:
        """Cache the encoded head of lines with this level, logger and message, if it is clean and both
        encoders write it the same way (so the line equals the general path's, whichever encodes it)."""
        name = logging.getLevelName(level)
        head = {"level": name, "logger": logger, "message": msg}
        if self.process_log_record(dict(head)) != head or name not in _CLEAN:
            return
        text = _encode(head)
        if _dumps(head) == text and text.isascii():
            self._heads[(level, logger, msg)] = (text[:-1] + ",", name)

    def _finish(self, data: dict[str, Any], created: float) -> str:
        data["timestamp"] = self._timestamp(created)
        return _dumps(self.process_log_record(data))

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """Redact free text (recursively) and check vocabulary fields before serialisation."""
        clean = _CLEAN
        for key, value in log_data.items():
            cls = value.__class__
            if cls is str:
                if value not in clean and key not in _IDENTIFIERS:
                    log_data[key] = clean_str(key, value)
            elif cls not in SCALARS:
                log_data[key] = clean_value(key, value)
        return log_data


def _dumps(data: dict[str, Any]) -> str:
    """One JSON line, ASCII only; cleaned values are JSON-ready, anything else is written as text."""
    if _orjson is not None:
        try:
            line = _orjson.dumps(data).decode()
        except TypeError:  # a value orjson does not take (an int beyond 64 bits, ...): the encoder below
            return _encode(data)
        if line.isascii():
            return line
    return _encode(data)


# The standard library's encoder, built once (``json.dumps`` with ``default=`` builds one per call).
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode

# What emit() adds to a record besides its fields: the field names, so the formatter need not scan.
_FIELDS = "_agentops_fields"
# Attributes of a record emit() built, before its fields: the formatter's "nothing was added" check.
_RECORD_SIZE = len(vars(logging.LogRecord("", 0, "", 0, "", (), None))) + 1
_IDENTIFIERS = frozenset({"trace_id", "span_id", "timestamp"})
# The keys a line starts and ends with: fields carrying one of them take the general path.
_HEAD_KEYS = frozenset({"level", "logger", "message", "timestamp"})
_MAX_HEADS = 256  # (level, logger, message) heads cached per formatter
# Handlers whose emit() is the standard library's: a line for them can be written without a record.
_PLAIN_HANDLERS = frozenset({logging.StreamHandler, logging.FileHandler})


def emit(logger: logging.Logger, level: int, msg: str, fields: dict[str, Any]) -> None:
    """Log one record whose origin is known, skipping the stack walk of ``Logger.findCaller``.

    The caller has checked ``logger.isEnabledFor(level)``; ``fields`` become record attributes as
    with ``extra=`` (their names must not clash with ``LogRecord``'s own; the package's never do).

    When every handler that would see the record is a plain stream or file handler with a
    :class:`JsonLogFormatter` in its default configuration and no filter but
    :class:`CorrelationFilter` — what :func:`configure_json_logging` sets up — the line is written
    straight to each stream, under the handler's lock, without building a ``LogRecord``: the same
    bytes, at a fraction of the cost. Any other setup (a handler or filter of the application's own,
    propagation to the root logger, caplog) gets a real record through ``logger.handle``.
    """
    handlers = _direct_handlers(logger)
    if handlers is None:
        _handle(logger, level, msg, fields)
        return
    if fields.get("trace_id") is None:  # what CorrelationFilter would add
        fields["trace_id"], fields["span_id"] = current_ids()
    created = time.time()
    for handler in handlers:
        if level < handler.level:
            continue
        try:
            line = handler.formatter._line(level, logger.name, msg, fields, created)  # type: ignore[union-attr]
            with handler.lock:  # type: ignore[union-attr]
                stream = handler.stream  # type: ignore[attr-defined]
                stream.write(line + handler.terminator)  # type: ignore[attr-defined]
                stream.flush()
        except Exception:  # let logging report it its usual way (handleError)
            handler.handle(_record(logger, level, msg, fields))


def _direct_handlers(logger: logging.Logger) -> list[logging.Handler] | None:
    """The logger's handlers if a line can be written to them without a record (see emit), else None."""
    handlers = logger.handlers
    if not handlers or logger.propagate or logger.filters or logger.disabled:
        return None
    for handler in handlers:
        formatter = handler.formatter
        if (
            handler.__class__ not in _PLAIN_HANDLERS
            or formatter.__class__ is not JsonLogFormatter
            or not formatter._lean  # type: ignore[union-attr]
            or handler.stream is None  # type: ignore[attr-defined]
        ):
            return None
        for f in handler.filters:
            if f.__class__ is not CorrelationFilter:
                return None
    return handlers


def _record(logger: logging.Logger, level: int, msg: str, fields: dict[str, Any]) -> logging.LogRecord:
    record = logger.makeRecord(logger.name, level, __file__, 0, msg, (), None)
    attrs = record.__dict__
    attrs.update(fields)
    attrs[_FIELDS] = fields.keys()
    return record


def _handle(logger: logging.Logger, level: int, msg: str, fields: dict[str, Any]) -> None:
    logger.handle(_record(logger, level, msg, fields))


def configure_json_logging(
    target: IO[str] | str | os.PathLike[str] | None = None,
    *,
    level: int = logging.INFO,
    logger_name: str = "agentops",
) -> logging.Handler:
    """Send ``logger_name`` records as JSON lines to a stream or file; returns the handler to remove later.

    The logger stops propagating to the root logger (so lines are not printed twice) and gets a
    :class:`CorrelationFilter`. Call ``logging.getLogger(logger_name).removeHandler(handler)`` (or
    :meth:`Telemetry.shutdown` for handlers it created) to undo.

    Args:
        target: a text stream (default ``sys.stderr``) or a file path (appended to).
        level: minimum level; below it nothing is formatted at all.
        logger_name: the logger to configure (``"agentops"`` covers every module of this package).
    """
    if target is None or hasattr(target, "write"):
        handler: logging.Handler = logging.StreamHandler(target)  # type: ignore[arg-type]
    else:
        handler = logging.FileHandler(os.fspath(target), encoding="utf-8")
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(CorrelationFilter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler
