"""Run the cookbook's chapters with papermill and publish them as a small website.

``run(["00_quickstart"], {"seed": "7"})`` checks everything *before* a kernel starts — parameters
against each chapter's ``parameters`` cell (:class:`~agentops.errors.ParameterError` listing the valid
ones; a ``-p`` that only some chapters declare is a :class:`ParameterWarning` naming them), the real
providers the run needs (a missing key names its variable) and the output directory — then executes
each chapter into ``reports/``, renders it to HTML and writes ``index.md`` and ``index.html``: status,
duration, parameters, backend and model, and package versions. SIGINT/SIGTERM stop the kernel and still
write the index (:class:`RunInterrupted`).

Every chapter that calls a model shares the :data:`PROVIDER_PARAMETERS`.
"""

from __future__ import annotations

from agentops import _identity  # noqa: F401
from agentops.cookbook._chapters import (
    DEFAULT_NOTEBOOKS,
    Chapter,
    Parameter,
    ParameterWarning,
    coerce_parameters,
    discover,
    find_chapters,
)
from agentops.cookbook._classic import CLASSIC_TO_V1, classic_mapping
from agentops.cookbook._compare import compare_reports
from agentops.cookbook._output import check_output_dir
from agentops.cookbook._providers import PROVIDER_PARAMETERS, check_providers, local_model_parameters
from agentops.cookbook._report import ChapterResult, RunReport, package_versions
from agentops.cookbook._runner import RunInterrupted, preflight, refresh, run

__all__ = [
    "CLASSIC_TO_V1",
    "DEFAULT_NOTEBOOKS",
    "PROVIDER_PARAMETERS",
    "Chapter",
    "ChapterResult",
    "Parameter",
    "ParameterWarning",
    "RunInterrupted",
    "RunReport",
    "check_output_dir",
    "check_providers",
    "classic_mapping",
    "coerce_parameters",
    "compare_reports",
    "discover",
    "find_chapters",
    "local_model_parameters",
    "package_versions",
    "preflight",
    "refresh",
    "run",
]
