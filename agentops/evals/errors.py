"""The eval package's errors, each in the family of :mod:`agentops.errors` it belongs to.

>>> from agentops.errors import ConfigError, EvaluationError
>>> issubclass(SuiteError, ConfigError), issubclass(RegressionError, EvaluationError)
(True, True)
"""

from __future__ import annotations

from agentops.errors import ConfigError, EvaluationError

__all__ = ["EvalError", "RegressionError", "SuiteError", "UnknownKeyError", "VerdictError"]


class EvalError(EvaluationError):
    """An evaluation could not run as asked (unknown target, missing judge, bad baseline...)."""


class SuiteError(ConfigError):
    """A suite file or case definition is invalid; the message names the case and the fix."""


class UnknownKeyError(ConfigError, LookupError):
    """A scorer key, tag, rubric dimension or target name does not exist; the message lists the valid ones."""


class VerdictError(EvaluationError):
    """A judge's answer could not be turned into a valid verdict (recorded on the case, never raised by runs)."""


class RegressionError(EvaluationError, AssertionError):
    """The regression gate failed; the message lists the regressed cases."""
