"""Per-chapter offline scenarios: the offline model's rules a chapter needs, out of the chapter's sight.

A chapter's code is what a reader writes for a real provider. One line gives the offline model the
behaviour the chapter needs — and does nothing when the config is a real provider's::

    cfg = model_config(llm_backend, model, base_url=base_url, max_tokens=max_tokens, seed=seed)
    scenario = load_scenario("quickstart", cfg)   # offline: adds the rules; real model: no-op
    print(scenario)                               # the rules, on demand

A scenario holds rules (first match wins, before the model's defaults) and, optionally, simulated
latency and fault rates. Both are drawn from the model's seed, so another seed changes what is sampled
(latency, which call fails, which of several equivalent phrasings is chosen) while every answer a
chapter asserts on stays the same.

>>> from agentops.models import model_config
>>> cfg = model_config("offline")
>>> load_scenario("quickstart", cfg).applied
True
>>> [r.name for r in cfg.rules][:2]
['call lookup_order', 'answer from order data']
"""

from __future__ import annotations

from agentops.scenarios._base import Scenario, load_scenario, scenario_names

__all__ = ["Scenario", "load_scenario", "scenario_names"]
