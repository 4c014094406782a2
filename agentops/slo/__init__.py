"""Service level objectives: SLIs, error budgets and burn rates from traces; Prometheus burn-rate alerts.

An SLO here is data (:class:`SLO`): *what fraction of events must be good* over a compliance window.
Four kinds cover an agent service:

================  ===============================================  ================================
kind              a bad event is                                   Prometheus source
================  ===============================================  ================================
``availability``  an agent turn (request) that raised              ``ag2_agent_turns_total``
``error_rate``    a model call that failed                         ``ag2_llm_calls_total``
``latency``       a successful turn slower than ``threshold`` s    ``ag2_agent_turn_duration_seconds``
``cost``          a turn costing more than ``threshold`` USD       ``agentops_request_cost_usd``
================  ===============================================  ================================

From the trace store (:class:`agentops.telemetry.TraceStore`) this module computes the SLI, the error
budget remaining and burn rates (:func:`evaluate`, :func:`slo_table`, :func:`burn_rates`), and replays
alerting over a recorded period (:func:`alert_timeline`). For production it generates Prometheus rules
(:func:`alert_rules`) with the multi-window, multi-burn-rate scheme of the Google SRE Workbook (ch. 5):
page when the budget burns 14.4× too fast over 1 h (confirmed over 5 m), page at 6× over 6 h (30 m),
open a ticket at 1× over 3 d (6 h). Every alert carries a ``runbook_url`` annotation.
:func:`promtool_check` and :func:`promtool_test` run ``promtool`` on the generated files.

Burn rate: the observed bad-event ratio divided by the ratio the SLO allows (``1 - target``). A burn
rate of 1 spends exactly the budget over the window; 14.4 over one hour spends 2 % of a 30-day budget.

Layout: :mod:`~agentops.slo.objectives` (the specs), :mod:`~agentops.slo.indicators` (SLIs and replay
from traces), :mod:`~agentops.slo.rules` (Prometheus rules and ``promtool``). The latency threshold's
buckets are AG2's, read from AG2 itself (:func:`agentops._ag2.turn_duration_buckets`).
"""

from __future__ import annotations

from agentops import _identity  # noqa: F401  (fails fast if another `agentops` shadows this one)
from agentops.config import Spec as Spec  # the config base, importable here as before
from agentops.slo import indicators, objectives, rules
from agentops.slo.indicators import *  # noqa: F403  (each module's __all__ is the face it adds)
from agentops.slo.objectives import *  # noqa: F403
from agentops.slo.rules import *  # noqa: F403

__all__: list[str] = []
__all__ += objectives.__all__
__all__ += indicators.__all__
__all__ += rules.__all__
