"""One base for the package's configuration models, and one uniqueness check.

Pydantic reports a bad value as a ``ValidationError`` listing locations and error codes. Every spec in
``agentops`` (roles, stages, workflows, faults, eval cases, guardrail policies, SLOs, runbooks ...)
subclasses :class:`Spec` instead, so building one with a bad value raises :class:`ConfigError` naming
the model, the field and the problem — the same whether it was built in code or loaded from a file.

>>> class Stage(Spec):
...     timeout_s: float = 1.0
>>> Stage(timeout_s="soon")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
agentops.errors.ConfigError: invalid Stage: timeout_s: Input should be a valid number...
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from agentops import _identity  # noqa: F401
from agentops.errors import ConfigError

__all__ = ["Spec", "check_unique", "format_validation"]


def format_validation(exc: ValidationError, what: str) -> str:
    """One line per problem: ``field.path: message``, prefixed by what was being built."""
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field (check its spelling)"
        elif err.get("type") == "missing":
            msg = "required field is missing"
        problems.append(f"{loc}: {msg}" if loc else msg)
    return f"invalid {what}: " + "; ".join(problems)


class Spec(BaseModel):
    """Frozen, strict configuration model: unknown fields and bad values raise :class:`ConfigError`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(format_validation(exc, type(self).__name__)) from None

    # Pydantic calls an overridden ``__init__`` for every nested instance, which would turn a nested
    # error into one opaque string and lose its location (``cases.2.assert.0``). Marking ours as
    # pydantic's base init keeps nested validation inside pydantic-core, so the top-level spec reports
    # every problem with its full path. (A pydantic internal: tests/test_config.py fails if it stops working.)
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Like pydantic's, but a bad value raises :class:`ConfigError`."""
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise ConfigError(format_validation(exc, cls.__name__)) from None


def check_unique(names: Iterable[str], what: str) -> None:
    """Raise :class:`ConfigError` naming every duplicated name.

    >>> check_unique(["a", "b", "a"], "stage names")
    Traceback (most recent call last):
    ...
    agentops.errors.ConfigError: stage names must be unique; duplicated: 'a' (give each a distinct name)
    """
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        listed = ", ".join(repr(n) for n in sorted(dup, key=str))
        raise ConfigError(f"{what} must be unique; duplicated: {listed} (give each a distinct name)")
