"""Tests for JSON log lines (agentops.telemetry.logs): hostile content, redaction of every value type,
correlation with the current span; and emit's direct line, which must be the line a LogRecord would have
produced, while any other logging setup gets a real record."""

from __future__ import annotations

import dataclasses
import enum
import io
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telemetry_support import CANARY

from agentops.telemetry import Telemetry, configure_json_logging, current_ids
from agentops.telemetry.logs import CorrelationFilter, JsonLogFormatter, emit

FIELDS = {"event": "agent.turn", "agent": "support", "trace_id": None, "span_id": None, "cost_usd": 1.5e-05}


@pytest.fixture()
def logger(request: pytest.FixtureRequest):
    log = logging.getLogger(f"agentops.test.{request.node.name}")
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
    log.filters.clear()
    log.propagate = True


def _parsed(text: str) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "timestamp"} for line in text.splitlines()]


def test_direct_line_equals_the_line_of_a_record(logger: logging.Logger) -> None:
    direct, through_record = io.StringIO(), io.StringIO()
    configure_json_logging(direct, logger_name=logger.name)
    emit(logger, logging.INFO, "agent.turn", {**FIELDS, "error": "mail jane@example.com"})
    handler = logger.handlers[0]
    handler.stream = through_record
    handler.addFilter(lambda record: True)  # a filter of the application's own: records are built again
    emit(logger, logging.INFO, "agent.turn", {**FIELDS, "error": "mail jane@example.com"})
    (a,), (b,) = _parsed(direct.getvalue()), _parsed(through_record.getvalue())
    assert a == b and list(a) == list(b)
    assert a["level"] == "INFO" and a["logger"] == logger.name and a["message"] == "agent.turn"
    assert a["trace_id"] is None and "jane@example.com" not in direct.getvalue()
    assert json.loads(direct.getvalue())["timestamp"].endswith("+00:00")


def test_direct_lines_respect_handler_levels_and_add_correlation_ids(logger: logging.Logger) -> None:
    info, warnings_only = io.StringIO(), io.StringIO()
    configure_json_logging(info, logger_name=logger.name)
    configure_json_logging(warnings_only, level=logging.INFO, logger_name=logger.name).setLevel(logging.WARNING)
    emit(logger, logging.INFO, "agent.turn", dict(FIELDS))
    emit(logger, logging.WARNING, "cost.unpriced", {"event": "cost.unpriced", "model": "m"})
    assert [r["message"] for r in _parsed(info.getvalue())] == ["agent.turn", "cost.unpriced"]
    (only,) = _parsed(warnings_only.getvalue())
    assert only["message"] == "cost.unpriced" and list(only)[-2:] == ["trace_id", "span_id"]


def test_other_setups_get_a_real_record(logger: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[logging.LogRecord] = []

    class Mine(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger.addHandler(Mine())
    logger.propagate = False
    emit(logger, logging.WARNING, "agent.turn", dict(FIELDS))
    assert seen and seen[0].agent == "support" and seen[0].getMessage() == "agent.turn"
    logger.propagate = True  # to the root logger, where caplog listens
    with caplog.at_level(logging.INFO, logger=logger.name):
        emit(logger, logging.INFO, "agent.turn", dict(FIELDS))
    assert [r.agent for r in caplog.records] == ["support"]


def test_a_broken_stream_is_reported_by_logging_not_raised(logger: logging.Logger) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    handler = logging.StreamHandler(Broken())
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(CorrelationFilter())
    errors: list[logging.LogRecord] = []
    handler.handleError = errors.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.propagate = False
    emit(logger, logging.INFO, "agent.turn", dict(FIELDS))
    assert [r.getMessage() for r in errors] == ["agent.turn"]


# -- log lines through logging ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hostile", ['say "hi"', "line1\nline2\r\n\t", "emoji 🚀 ünïcödé \u2028", "\\ back\\slash {}%s"]
)
def test_json_log_lines_stay_valid_with_hostile_content(hostile):
    buf = io.StringIO()
    name = "agentops.hostile"
    handler = configure_json_logging(buf, logger_name=name)
    try:
        logging.getLogger(name).info(hostile, extra={"field": hostile, "nested": {"k": [hostile]}})
    finally:
        logging.getLogger(name).removeHandler(handler)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert rec["message"] == hostile and rec["field"] == hostile and rec["nested"] == {"k": [hostile]}
    assert rec["level"] == "INFO" and rec["logger"] == name and "timestamp" in rec


def test_json_logs_redact_messages_extras_and_exceptions():
    buf = io.StringIO()
    name = "agentops.redacting"
    handler = configure_json_logging(buf, logger_name=name)
    log = logging.getLogger(name)
    try:
        log.info("token %s", CANARY, extra={"detail": {"key": CANARY}})
        try:
            raise RuntimeError(f"bad key {CANARY}")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    text = buf.getvalue()
    assert CANARY not in text
    assert text.count("[SECRET]") == 3
    assert all(json.loads(line) for line in text.splitlines())


class _Account:
    def __str__(self) -> str:
        return f"account of jane.doe@example.com with key {CANARY}"


@dataclasses.dataclass
class _Login:
    user: str
    password_hint: str


class _Level(enum.Enum):
    KEY = CANARY


def test_json_logs_redact_every_extra_value_type():
    """Issue 11: objects and sets in ``extra=`` were written with ``str()`` after redaction."""
    buf = io.StringIO()
    name = "agentops.extra_types"
    handler = configure_json_logging(buf, logger_name=name)
    extra = {
        "obj": _Account(),
        "labels": {CANARY, "plain"},
        "frozen": frozenset({"ops@example.com"}),
        "login": _Login("jane", f"api_key={CANARY}"),
        "raw": f"token {CANARY}".encode(),
        "err": ValueError(f"bad key {CANARY}"),
        "level_enum": _Level.KEY,
        "nested": {"list": [{"deep": {CANARY}}], CANARY: 1},
        "count": 3,
        "ratio": 0.5,
        "flag": True,
        "nothing": None,
    }
    try:
        logging.getLogger(name).info("extras", extra=extra)
    finally:
        logging.getLogger(name).removeHandler(handler)
    text = buf.getvalue()
    assert CANARY not in text and "ops@example.com" not in text and "jane.doe" not in text
    rec = json.loads(text)
    assert rec["labels"] == ["plain", "[SECRET]"]  # a set becomes a list sorted by text, redacted
    assert rec["frozen"] == ["[EMAIL_ADDRESS]"]
    assert rec["obj"] == "account of [EMAIL_ADDRESS] with key [SECRET]"
    assert rec["login"] == {"user": "jane", "password_hint": "api_key=[SECRET]"}
    assert rec["raw"] == "token [SECRET]" and rec["err"] == "ValueError: bad key [SECRET]"
    assert rec["level_enum"] == "[SECRET]" and rec["nested"] == {"list": [{"deep": ["[SECRET]"]}], "[SECRET]": 1}
    assert (rec["count"], rec["ratio"], rec["flag"], rec["nothing"]) == (3, 0.5, True, None)


def test_correlation_filter_adds_ids_of_current_span():
    t = Telemetry()
    buf = io.StringIO()
    handler = configure_json_logging(buf, logger_name="agentops.corr")
    try:
        tracer = t.tracer_provider.get_tracer("test")
        with tracer.start_as_current_span("outer"):
            expected = current_ids()
            logging.getLogger("agentops.corr").warning("inside")
        logging.getLogger("agentops.corr").warning("outside")
    finally:
        logging.getLogger("agentops.corr").removeHandler(handler)
    inside, outside = (json.loads(x) for x in buf.getvalue().splitlines())
    assert (inside["trace_id"], inside["span_id"]) == expected and len(expected[0]) == 32
    assert outside["trace_id"] is None and current_ids() == (None, None)


# -- the line's cached head ---------------------------------------------------------------------------

FIELD_VALUES = st.one_of(
    st.sampled_from(["support", "agent.turn", "SECRET", CANARY, f"key={CANARY}", "jane@example.com", "é\u2028"]),
    st.text(max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.none(),
    st.booleans(),
    st.lists(st.sampled_from(["a", CANARY, 1]), max_size=3),
)
FIELD_KEYS = st.sampled_from(
    ["event", "agent", "model", "trace_id", "error", "request", "cost_usd", "custom", "message", "timestamp"]
)


def _general(fmt: JsonLogFormatter, level: int, logger: str, msg: str, fields: dict, created: float) -> str:
    """The line of the general path: the whole record's dict cleaned and encoded in one piece."""
    data = {"level": logging.getLevelName(level), "logger": logger, "message": msg, **fields}
    return fmt._finish(data, created)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.dictionaries(FIELD_KEYS, FIELD_VALUES, max_size=6),
    msg=st.sampled_from(["agent.turn", "llm.call", f"token {CANARY}", "ünï", ""]),
    level=st.sampled_from([logging.DEBUG, logging.INFO, logging.ERROR]),
    created=st.floats(min_value=0, max_value=4e9),
)
def test_a_line_with_a_cached_head_equals_the_general_path(fields, msg, level, created):
    fmt = JsonLogFormatter()
    first = fmt._line(level, "agentops.t", msg, dict(fields), created)  # may cache the head
    second = fmt._line(level, "agentops.t", msg, dict(fields), created)  # uses it when it is clean
    expected = _general(JsonLogFormatter(), level, "agentops.t", msg, dict(fields), created)
    assert first == second == expected
    assert second.isascii() and json.loads(second)["message"] == json.loads(expected)["message"]
    if CANARY not in str(fields.get("trace_id")):  # identifiers pass unchanged; everything else is redacted
        assert CANARY not in second


def test_the_cached_head_is_used_only_while_its_parts_are_known_clean():
    from agentops.telemetry._redact import forget

    fmt = JsonLogFormatter()
    fmt._line(logging.INFO, "agentops.t", "agent.turn", {"agent": "a"}, 0.0)
    assert list(fmt._heads) == [(logging.INFO, "agentops.t", "agent.turn")]
    fmt._line(logging.INFO, "agentops.t", f"token {CANARY}", {}, 0.0)  # a message that redaction changes
    assert len(fmt._heads) == 1
    forget()  # nothing is known clean any more: the general path until the parts are checked again
    line = fmt._line(logging.INFO, "agentops.t", "agent.turn", {"agent": "a"}, 0.0)
    assert line == _general(fmt, logging.INFO, "agentops.t", "agent.turn", {"agent": "a"}, 0.0)
    assert json.loads(line)["message"] == "agent.turn"
