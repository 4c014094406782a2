"""One exception hierarchy for the whole package, grouped like httpx's.

Every error the helpers raise is an :class:`AgentOpsError` whose message says what was wrong and how
to fix it, so a reader never has to dig through a stack trace from inside AG2::

    AgentOpsError
    ├── ConfigError (ValueError)          bad input: names the field or value and the fix
    │   ├── ParameterError                a notebook parameter is unknown or mistyped
    │   ├── MissingCredentialsError       a real provider's key variable is not set
    │   └── UnknownModelPrice (LookupError)
    ├── MissingDependencyError (ImportError)
    ├── ProviderError                     the model provider failed; ``retryable`` says whether to retry
    │   ├── RateLimitError                429, honour ``retry_after``
    │   ├── ServerError                   5xx
    │   ├── ProviderTimeout (TimeoutError)
    │   └── OutputError                   the answer is unusable
    │       ├── MalformedOutputError, EmptyOutputError, TruncatedOutputError
    ├── RefusalError                      a policy refused; never retried
    │   ├── BudgetExceeded (agentops.budgets), ToolDenied, GuardrailBlocked
    ├── EvaluationError                   an eval suite, judge or gate failed
    ├── TimeLimitExceeded (TimeoutError)  a stage, role or run outlasted a limit agentops sets
    └── ChapterFailed

Retry decisions go through :func:`is_retryable`, never through ``isinstance`` checks scattered around.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AgentOpsError",
    "ChapterFailed",
    "ConfigError",
    "EmptyOutputError",
    "EvaluationError",
    "GuardrailBlocked",
    "MalformedOutputError",
    "MissingCredentialsError",
    "MissingDependencyError",
    "OutputError",
    "ParameterError",
    "ProviderError",
    "ProviderTimeout",
    "RateLimitError",
    "RefusalError",
    "ServerError",
    "TimeLimitExceeded",
    "ToolDenied",
    "TruncatedOutputError",
    "UnknownModelPrice",
    "is_retryable",
]


class AgentOpsError(Exception):
    """Base class of every error raised by ``agentops``."""


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


class ConfigError(AgentOpsError, ValueError):
    """A configuration value is invalid; the message names the value and the accepted ones."""


class MissingCredentialsError(ConfigError):
    """A real provider was selected but the environment variable holding its key is not set."""

    def __init__(self, backend: str, variable: str) -> None:
        self.backend = backend
        self.variable = variable
        super().__init__(
            f"backend {backend!r} needs an API key: set the environment variable {variable} "
            f"(for example `export {variable}=...`), or use llm_backend='offline' to run without one"
        )


class ParameterError(ConfigError):
    """A notebook parameter is unknown or has the wrong type; nothing was executed."""


class UnknownModelPrice(ConfigError, LookupError):
    """No price is known for a model; register one with ``agentops.pricing.register_price``."""


class MissingDependencyError(AgentOpsError, ImportError):
    """An optional extra is needed for the requested feature."""


# --------------------------------------------------------------------------------------------------
# Provider failures
# --------------------------------------------------------------------------------------------------


class ProviderError(AgentOpsError):
    """The model provider failed, shaped like an OpenAI-compatible provider's error.

    Attributes:
        retryable: whether the same request may succeed if sent again (class default, per instance
            overridable).
        status_code: the HTTP status, or ``None`` when there was no response.
        retry_after: seconds the provider asked us to wait, if it said.
        request_id: the provider's request id, if known.
    """

    retryable: bool = False
    status_code: int | None = None
    error_type: str = "api_error"

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        retry_after: float | None = None,
        status_code: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        if status_code is not None:
            self.status_code = status_code
        if retryable is not None:
            self.retryable = retryable
        self.headers: dict[str, str] = {"x-request-id": request_id} if request_id else {}
        if retry_after is not None:
            self.headers["retry-after"] = f"{retry_after:g}"
        self.body = {"error": {"message": message, "type": self.error_type, "code": self.status_code}}


class RateLimitError(ProviderError):
    """HTTP 429 with a ``retry-after`` header (seconds)."""

    retryable = True
    status_code = 429
    error_type = "rate_limit_exceeded"


class ServerError(ProviderError):
    """HTTP 5xx: the provider is overloaded or down."""

    retryable = True
    status_code = 503
    error_type = "server_error"


class ProviderTimeout(ProviderError, TimeoutError):
    """The request timed out before the provider answered (no status code)."""

    retryable = True
    error_type = "timeout"


class OutputError(ProviderError):
    """The provider answered, but the answer cannot be used; asking again may help."""

    retryable = True
    error_type = "bad_output"


class MalformedOutputError(OutputError):
    """Structured output was required and the answer is not valid for its schema."""

    error_type = "malformed_output"


class EmptyOutputError(OutputError):
    """The answer has neither text nor tool calls."""

    error_type = "empty_output"


class TruncatedOutputError(OutputError):
    """The answer stopped at the token limit (finish reason ``length``)."""

    error_type = "truncated_output"


# --------------------------------------------------------------------------------------------------
# Refusals and evaluation
# --------------------------------------------------------------------------------------------------


class RefusalError(AgentOpsError):
    """A policy refused the action (budget, tool authorization, guardrail); retrying cannot help."""


class ToolDenied(RefusalError):
    """A tool call was refused by the tool policy."""


class GuardrailBlocked(RefusalError):
    """A guardrail blocked a message."""


class EvaluationError(AgentOpsError):
    """An evaluation suite, judge or gate failed."""


class TimeLimitExceeded(AgentOpsError, TimeoutError):
    """A stage, role or run outlasted a time limit that ``agentops`` enforces (not the provider's own).

    The message names what ran out of time, the limit, the argument that raises it and the usual cause
    (a slow or busy model server). Never retried by :func:`is_retryable`: the same limit would be hit
    again.

    Attributes:
        where: what ran out of time, e.g. ``"stage 'review'"``.
        limit_s: the limit in seconds.
        parameter: the argument that raises the limit, e.g. ``"timeout_s"``.

    >>> exc = TimeLimitExceeded("stage 'lint'", 60, "the stage's timeout_s")
    >>> str(exc).split(": ")[0], str(exc).split("; ")[-1]
    ("stage 'lint' exceeded its 60 s time limit", "raise the stage's timeout_s or use a faster model")
    """

    def __init__(self, where: str, limit_s: float, parameter: str, detail: str = "") -> None:
        self.where, self.limit_s, self.parameter, self.detail = where, float(limit_s), parameter, detail
        during = f" {detail}" if detail else ""
        super().__init__(
            f"{where} exceeded its {limit_s:g} s time limit{during}: the model server answered too slowly "
            f"(a small local model on a busy machine can take minutes); raise {parameter} or use a faster model"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.where, self.limit_s, self.parameter, self.detail)


class ChapterFailed(AgentOpsError):
    """A chapter raised while executing; names the chapter and the failing cell."""

    def __init__(self, chapter: str, cell: int | None, error: str) -> None:
        self.chapter = chapter
        self.cell = cell
        self.error = error
        where = f"cell {cell}" if cell is not None else "before any cell ran"
        super().__init__(f"chapter {chapter!r} failed at {where}: {error}")


# --------------------------------------------------------------------------------------------------
# Retry decisions
# --------------------------------------------------------------------------------------------------

_RETRYABLE_STATUS = frozenset({408, 409, 429})


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def is_retryable(exc: BaseException) -> bool:
    """Whether sending the same request again may succeed.

    ``ProviderError`` says so itself; refusals, configuration errors and evaluation errors never are.
    Foreign errors (the OpenAI SDK's, httpx's, the standard library's) are judged by their HTTP status
    (408, 409, 429 and 5xx retry) or by being a timeout or a dropped connection.

    >>> is_retryable(RateLimitError("slow down", retry_after=1))
    True
    >>> is_retryable(ConfigError("bad"))
    False
    >>> is_retryable(ConnectionResetError())
    True
    """
    if isinstance(exc, ProviderError):
        return bool(exc.retryable)
    if isinstance(exc, AgentOpsError):
        return False
    status = _status_of(exc)
    if status is not None:
        return status in _RETRYABLE_STATUS or status >= 500
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    name = type(exc).__name__
    return name in {"APIConnectionError", "APITimeoutError", "ConnectError", "ReadTimeout", "RemoteProtocolError"}
