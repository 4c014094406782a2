"""The one config base and the one uniqueness check."""

from __future__ import annotations

import pytest
from pydantic import Field, ValidationError

from agentops.config import Spec, check_unique, format_validation
from agentops.errors import ConfigError


class _Stage(Spec):
    name: str
    timeout_s: float = Field(default=1.0, gt=0)


def test_bad_value_is_a_config_error_naming_model_and_field() -> None:
    with pytest.raises(ConfigError, match=r"invalid _Stage: timeout_s: Input should be greater than 0"):
        _Stage(name="a", timeout_s=0)


def test_unknown_field_and_missing_field_named() -> None:
    with pytest.raises(ConfigError, match="tiemout: unknown field"):
        _Stage(name="a", tiemout=3)
    with pytest.raises(ConfigError, match="name: required field is missing"):
        _Stage()


def test_model_validate_also_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="timeout_s"):
        _Stage.model_validate({"name": "a", "timeout_s": -1})
    assert _Stage.model_validate({"name": "a"}).timeout_s == 1.0


def test_specs_are_frozen() -> None:
    stage = _Stage(name="a")
    with pytest.raises(ValidationError):
        stage.name = "b"  # type: ignore[misc]


def test_config_error_is_not_a_pydantic_error() -> None:
    try:
        _Stage(name=3)
    except ConfigError as exc:
        assert not isinstance(exc, ValidationError)
        assert exc.__cause__ is None


def test_format_validation_lists_every_problem() -> None:
    try:
        _Stage.__pydantic_validator__.validate_python({"timeout_s": "x"})
    except ValidationError as exc:
        text = format_validation(exc, "stage")
    assert text.startswith("invalid stage: ")
    assert "timeout_s" in text and "name: required field is missing" in text


def test_check_unique() -> None:
    check_unique(["a", "b"], "names")
    with pytest.raises(ConfigError, match="duplicated: 'a', 'b'"):
        check_unique(["b", "a", "b", "a", "c"], "names")


class _Outer(Spec):
    stages: tuple[_Stage, ...]


def test_nested_errors_keep_their_location() -> None:
    with pytest.raises(ConfigError, match=r"stages\.1\.timeout_s: Input should be greater than 0"):
        _Outer(stages=({"name": "a"}, {"name": "b", "timeout_s": 0}))
    assert _Outer(stages=({"name": "a"},)).stages[0].name == "a"
