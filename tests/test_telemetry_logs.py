"""Tests for agentops.telemetry.logs.emit: the line written straight to our own handlers' streams is the
line a LogRecord would have produced, and any other logging setup gets a real record."""

from __future__ import annotations

import io
import json
import logging

import pytest

from agentops.telemetry.logs import CorrelationFilter, JsonLogFormatter, configure_json_logging, emit

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
