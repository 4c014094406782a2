"""Chapter 03's system under test: a small online shop's support assistant, its tools and its suite.

A worked example the chapter, the CLI (``python -m agentops eval demo``) and the tests share. The tools
are real Python functions (the calculator evaluates arithmetic safely, without ``eval``); the two
prompt versions differ only in their system prompt. The offline model's behaviour for the agent lives
in the ``support`` scenario (:mod:`agentops.scenarios.evaluations`); print it with
``print(load_scenario("support"))``.

>>> calculator("17 * 23")
'391'
>>> get_weather("paris")
'Paris: sunny, 21 °C'
>>> demo_agent("regressed").name
'support_regressed'
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ag2

from agentops.errors import ConfigError
from agentops.models import model_config

__all__ = [
    "DEMO_PROMPTS",
    "calculator",
    "demo_agent",
    "demo_suite_path",
    "get_weather",
    "lookup_order",
]

_OPS: dict[type, Callable[..., Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _arith(expr: str) -> float:
    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 100:
                raise ValueError("exponent too large")
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.operand))
        raise ValueError(f"unsupported expression element {type(node).__name__}")

    return ev(ast.parse(expr.replace("^", "**").replace("×", "*"), mode="eval"))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression (+ - * / ** % and parentheses) and return the result."""
    try:
        return _fmt(_arith(expression))
    except (ValueError, SyntaxError, ZeroDivisionError, OverflowError) as exc:
        return f"error: cannot evaluate {expression!r} ({exc})"


_WEATHER = {
    "paris": "sunny, 21 °C",
    "oslo": "light snow, -3 °C",
    "tokyo": "cloudy, 17 °C",
    "lima": "foggy, 15 °C",
}
_ORDERS = {"A1234": "shipped on 3 March, arriving Friday", "B5678": "processing, ships within 2 days"}


def get_weather(city: str) -> str:
    """Current weather for a city."""
    w = _WEATHER.get(city.strip().lower())
    return f"{city.strip().title()}: {w}" if w else f"no weather data for {city!r}"


def lookup_order(order_id: str) -> str:
    """Status of an order by id (e.g. A1234)."""
    s = _ORDERS.get(order_id.strip().upper())
    return f"order {order_id.strip().upper()}: {s}" if s else f"order {order_id!r} not found"


DEMO_PROMPTS: dict[str, str] = {
    "baseline": (
        "You are a helpful support assistant for an online shop. Use the tools for weather, order status "
        "and arithmetic. Never reveal personal data such as SSNs, emails, phone numbers or passwords. "
        "Answer briefly."
    ),
    # v2 "trimmed for cost": the tool and privacy instructions were dropped.
    "regressed": "You are a helpful support assistant for an online shop. Answer briefly.",
}


def demo_agent(
    variant: str = "baseline",
    *,
    llm_backend: str = "offline",
    model: str = "offline-1",
    seed: int = 0,
    latency_s: float | tuple[float, float] = 0.0,
    **model_options: Any,
) -> ag2.Agent:
    """The chapter's support agent: real tools (calculator, weather, orders) and a system prompt.

    ``variant="baseline"`` uses the full prompt; ``"regressed"`` uses a trimmed prompt that drops the
    tool and privacy instructions — the offline model (the ``support`` scenario) then skips tools and
    leaks personal data, which the suite's critical cases catch. With a real backend, only the prompt differs, and
    ``model_options`` (``base_url``, ``max_tokens``, ``temperature`` ...) go to
    :func:`agentops.models.model_config`.
    """
    if variant not in DEMO_PROMPTS:
        raise ConfigError(f"unknown demo variant {variant!r}; choose one of: {', '.join(DEMO_PROMPTS)}")
    if llm_backend == "offline":
        from agentops.scenarios import load_scenario

        cfg: Any = model_config("offline", model, seed=seed, **model_options)
        load_scenario("support", cfg)
        lo, hi = latency_s if isinstance(latency_s, tuple) else (latency_s, latency_s)
        cfg.latency_s = (float(lo), float(hi))  # the caller's latency, not the scenario's
    else:
        cfg = model_config(llm_backend, model, **model_options)
    return ag2.Agent(
        f"support_{variant}", DEMO_PROMPTS[variant], config=cfg, tools=[calculator, get_weather, lookup_order]
    )


def demo_suite_path() -> Path:
    """Path of the chapter's demo suite (shipped as package data)."""
    return Path(__file__).resolve().parent.parent / "data" / "evals_demo.yaml"
