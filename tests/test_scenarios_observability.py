"""Chapter 04's failure table: one row per failed request, with the error class and a one-line reason."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agentops.errors import TimeLimitExceeded
from agentops.graph import RouteParseError
from agentops.scenarios.observability import FailedRequests, failure_reason


def test_reason_is_the_first_non_empty_line_collapsed():
    exc = RuntimeError("\n  router   answer\tdid not validate \nTraceback (most recent call last): ...")
    assert failure_reason(exc) == "router answer did not validate"


def test_reason_of_an_error_without_a_message_names_its_class():
    assert failure_reason(KeyError()) == "(KeyError with no message)"
    assert failure_reason(RuntimeError("   \n ")) == "(RuntimeError with no message)"


def test_reason_is_redacted_like_a_log_line():
    reason = failure_reason(ValueError("could not reach customer@example.com"))
    assert reason == "could not reach [EMAIL_ADDRESS]" and "@" not in reason


def test_reason_is_cut_to_its_limit_with_an_ellipsis():
    reason = failure_reason(ValueError("x" * 500), limit=40)
    assert len(reason) == 40 and reason.endswith("…")


@given(st.text(max_size=400))
def test_reason_is_always_one_short_line(message):
    reason = failure_reason(ValueError(message))
    assert reason and "\n" not in reason and len(reason) <= 120


def test_failed_requests_keep_order_class_and_reason():
    failed = FailedRequests()
    failed.record(0, RouteParseError("router answer did not validate (route 'x' is not one of ['billing'])"))
    failed.record(2, TimeLimitExceeded("stage 'lint'", 60, "timeout_s"))
    frame = failed.frame()
    assert len(failed) == 2 and list(frame.columns) == ["request", "error", "reason"]
    assert list(frame["request"]) == [0, 2] and list(frame["error"]) == ["RouteParseError", "TimeLimitExceeded"]
    assert frame["reason"][1].startswith("stage 'lint' exceeded its 60 s time limit")
    lines = str(failed).splitlines()
    assert lines[0] == "request  error              reason" and lines[1].startswith(
        "      0  RouteParseError    router"
    )


def test_no_failure_prints_one_line_and_an_empty_frame_with_columns():
    failed = FailedRequests()
    assert str(failed) == "no request failed" and len(failed) == 0
    assert list(failed.frame().columns) == ["request", "error", "reason"] and failed.frame().empty
