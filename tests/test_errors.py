"""The one exception tree and the retry decision."""

from __future__ import annotations

import pytest

from agentops import errors
from agentops.errors import (
    AgentOpsError,
    ConfigError,
    EmptyOutputError,
    MalformedOutputError,
    ProviderError,
    ProviderTimeout,
    RateLimitError,
    RefusalError,
    ServerError,
    ToolDenied,
    TruncatedOutputError,
    is_retryable,
)


def test_every_exported_class_is_an_agentops_error() -> None:
    classes = [getattr(errors, n) for n in errors.__all__ if isinstance(getattr(errors, n), type)]
    assert classes and all(issubclass(c, AgentOpsError) for c in classes)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (RateLimitError("429", retry_after=2.0), True),
        (ServerError("503"), True),
        (ProviderTimeout("slow"), True),
        (MalformedOutputError("bad json"), True),
        (EmptyOutputError("nothing"), True),
        (TruncatedOutputError("cut"), True),
        (ProviderError("400 bad request", status_code=400), False),
        (ProviderError("flaky", retryable=True), True),
        (ConfigError("bad"), False),
        (RefusalError("no"), False),
        (ToolDenied("no"), False),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (ValueError("x"), False),
        (KeyError("x"), False),
    ],
)
def test_is_retryable(exc: BaseException, expected: bool) -> None:
    assert is_retryable(exc) is expected


def test_foreign_errors_judged_by_status() -> None:
    class Foreign(Exception):
        def __init__(self, status: int) -> None:
            self.status_code = status

    assert [is_retryable(Foreign(s)) for s in (400, 401, 408, 409, 429, 500, 503)] == [
        False,
        False,
        True,
        True,
        True,
        True,
        True,
    ]


def test_provider_error_carries_headers_and_body() -> None:
    exc = RateLimitError("slow down", request_id="req_1", retry_after=1.5)
    assert exc.headers == {"x-request-id": "req_1", "retry-after": "1.5"}
    assert exc.body["error"]["code"] == 429
    assert exc.retry_after == 1.5
    assert isinstance(ProviderTimeout("t"), TimeoutError)


def test_models_reexports_the_same_classes() -> None:
    from agentops import models

    assert models.RateLimitError is RateLimitError
    assert models.MalformedOutputError is MalformedOutputError
