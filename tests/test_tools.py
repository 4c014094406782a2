"""Tests for agentops.tools: default deny, scopes, sliding-window rate limits that expire, approvals
through AG2's flow judged on the structured call, DENIED results instead of exceptions, and an audit
that logs refusals as refusals (unbilled). SafeFiles has its own tests in test_safefiles.py."""

from __future__ import annotations

from types import SimpleNamespace

import ag2
import limits.storage.memory as limits_memory
import pytest
from ag2.events import HumanInputRequest, ToolApprovalRequest, ToolCallEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from agentops.errors import ConfigError
from agentops.guardrails import GuardrailMiddleware, GuardrailPolicy
from agentops.models import OfflineModel, tool_rule
from agentops.tools import APPROVAL_DENIED, Approver, SafeFiles, ToolDenied, ToolRegistry


def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


def wire_money(amount: int, to: str) -> str:
    """Send money to someone."""
    return f"sent {amount} to {to}"


def delete_db() -> str:
    """Drop the production database."""
    return "dropped"


def make_registry(**kw) -> ToolRegistry:
    reg = ToolRegistry(**kw)
    reg.register(get_weather, scopes=["weather:read"], rate_limit="2/minute", cost_usd=0.001)
    reg.register(wire_money, scopes=["payments:write"], approval=True, cost_usd=0.25)
    reg.register(delete_db, scopes=["db:admin"])
    return reg


def model() -> OfflineModel:
    cfg = OfflineModel(seed=0)
    cfg.add_rule(tool_rule("get_weather", keywords=["weather"], arguments={"city": "Paris"}))
    cfg.add_rule(
        tool_rule(
            "wire_money",
            keywords=["pay"],
            arguments=lambda p: {"amount": 50 if "small" in p.user else 5000, "to": "bob"},
        )
    )
    cfg.add_rule(tool_rule("delete_db", keywords=["drop"], arguments={}))
    return cfg


def test_default_deny_and_grants() -> None:
    reg = make_registry()
    assert reg.allowed_tools("nobody") == []
    d = reg.check("nobody", "get_weather")
    assert not d.allowed and d.reason == "scope" and "lacks scope(s) ['weather:read']" in d.message
    assert reg.check("x", "launch_rockets").reason == "unregistered"
    reg.grant("analyst", "weather:read")
    assert reg.allowed_tools("analyst") == ["get_weather"]
    assert reg.scopes_of("analyst") == {"weather:read"}
    reg.revoke("analyst", "weather:read")
    assert reg.allowed_tools("analyst") == []
    reg.grant("root", "*")
    assert set(reg.allowed_tools("root")) == {"get_weather", "wire_money", "delete_db"}
    reg.revoke("root")
    assert reg.scopes_of("root") == frozenset()


def test_registration_validation() -> None:
    reg = make_registry()
    with pytest.raises(ConfigError, match="already registered"):
        reg.register(get_weather, scopes=["weather:read"])
    with pytest.raises(ConfigError, match="invalid rate_limit"):
        reg.register(get_weather, name="w2", rate_limit="often")
    with pytest.raises(ConfigError, match="cost_usd"):
        reg.register(get_weather, name="w3", cost_usd=-1)
    with pytest.raises(ConfigError, match="invalid scope"):
        reg.register(get_weather, name="w4", scopes=["bad scope"])
    with pytest.raises(ConfigError, match="invalid tool name"):
        reg.register(get_weather, name="has space")
    with pytest.raises(ConfigError, match="invalid scope"):
        reg.grant("a", "no spaces allowed")
    with pytest.raises(ConfigError, match="rate-limit storage"):
        ToolRegistry(storage_uri="nope://x")

    @reg.register(scopes=["x:y"], name="decorated")
    def helper() -> str:
        """A decorated tool."""
        return "ok"

    assert helper() == "ok" and reg.specs["decorated"].scopes == {"x:y"}


def test_unauthorized_tools_are_never_offered() -> None:
    reg = make_registry()
    reg.grant("assistant", "weather:read", "payments:write")
    names = [t.name for t in reg.tools_for("assistant")]
    assert names == ["get_weather", "wire_money"]
    assert reg.tools_for("intern") == []


async def test_agent_flow_rate_limit_approval_and_denials() -> None:
    events: list[tuple[str, dict]] = []
    reg = make_registry(listeners=[lambda k, p: events.append((k, dict(p)))])
    reg.grant("assistant", "weather:read", "payments:write")
    approver = Approver({"wire_money": lambda a: a["amount"] <= 100})
    agent = ag2.Agent(
        "assistant",
        "Help.",
        config=model(),
        tools=reg.tools_for("assistant"),
        middleware=[reg.authorizer("assistant")],
        hitl_hook=approver,
    )
    bodies = [(await agent.ask(q)).body for q in ("weather?", "weather?", "weather?", "pay small", "pay big")]
    assert bodies[0] == bodies[1] == "get_weather returned: sunny in Paris."
    assert "DENIED: rate limit 2/minute for tool 'get_weather' reached" in bodies[2]
    assert bodies[3] == "wire_money returned: sent 50 to bob."
    assert bodies[4] == f"wire_money returned: {APPROVAL_DENIED}."
    assert approver.decisions == [("wire_money", True), ("wire_money", False)]
    frame = reg.calls_frame()
    assert list(frame["outcome"]) == ["ok", "ok", "denied", "ok", "denied"]
    assert list(frame["reason"]) == ["ok", "ok", "rate_limit", "ok", "approval"]
    assert reg.spend("assistant") == pytest.approx(0.252)
    assert events == [
        ("tool.denied", {"agent": "assistant", "tool": "get_weather", "reason": "rate_limit"}),
        ("tool.denied", {"agent": "assistant", "tool": "wire_money", "reason": "approval"}),
    ]
    assert reg.retry_after("assistant", "get_weather") > 0
    assert reg.retry_after("assistant", "delete_db") == 0.0


async def test_a_call_that_slips_through_gets_denied_not_raised() -> None:
    reg = make_registry()
    ran: list[str] = []

    def drop() -> str:
        """Drop everything."""
        ran.append("x")
        return "dropped"

    reg.register(drop, name="drop_all", scopes=["db:admin"])
    cfg = OfflineModel(seed=1)
    cfg.add_rule(tool_rule("drop_all", keywords=["drop"], arguments={}))
    # The tool reached the agent directly (not through tools_for): the authorizer still refuses it.
    agent = ag2.Agent(
        "intern",
        "Help.",
        config=cfg,
        tools=[ag2.tool(drop, name="drop_all")],
        middleware=[reg.authorizer("intern")],
    )
    reply = await agent.ask("drop it all")
    assert ran == []
    assert "DENIED: agent 'intern' lacks scope(s) ['db:admin'] for tool 'drop_all'" in reply.body
    assert "Traceback" not in reply.body
    # Revoking mid-conversation takes effect on the next call.
    reg.grant("intern", "db:admin")
    assert "dropped" in (await agent.ask("drop it all")).body
    reg.revoke("intern", "db:admin")
    assert "DENIED" in (await agent.ask("drop it all")).body


async def test_unregistered_tool_is_denied_by_default() -> None:
    reg = ToolRegistry()
    cfg = OfflineModel(seed=2)
    cfg.add_rule(tool_rule("get_weather", keywords=["weather"], arguments={"city": "Oslo"}))
    agent = ag2.Agent("a", "Help.", config=cfg, tools=[get_weather], middleware=[reg.authorizer("a")])
    assert "DENIED: tool 'get_weather' is not registered" in (await agent.ask("weather?")).body


def test_rate_limit_window_slides_and_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = {"now": 1_000.0}

    class FakeTime:
        @staticmethod
        def time() -> float:
            return clock["now"]

    monkeypatch.setattr(limits_memory, "time", FakeTime)
    reg = make_registry()
    reg.grant("a", "weather:read")
    assert reg.authorize_call("a", "get_weather").allowed
    clock["now"] += 30
    assert reg.authorize_call("a", "get_weather").allowed
    clock["now"] += 20
    assert reg.authorize_call("a", "get_weather").reason == "rate_limit"  # 2 calls within 60 s
    clock["now"] += 11  # the first call (t=1000) has left the moving window; the second (t=1030) has not
    assert reg.authorize_call("a", "get_weather").allowed
    assert reg.authorize_call("a", "get_weather").reason == "rate_limit"
    clock["now"] += 61
    assert reg.authorize_call("a", "get_weather").allowed
    # Limits are per agent: another agent has its own window.
    reg.grant("b", "weather:read")
    assert reg.authorize_call("b", "get_weather").allowed
    reg.reset_limits()


@settings(max_examples=30, deadline=None)
@given(gaps=st.lists(st.floats(min_value=0, max_value=40), min_size=1, max_size=25))
def test_rate_limit_never_exceeds_its_window(gaps: list[float]) -> None:
    clock = {"now": 5_000.0}

    class FakeTime:
        @staticmethod
        def time() -> float:
            return clock["now"]

    original = limits_memory.time
    limits_memory.time = FakeTime  # type: ignore[assignment]
    try:
        reg = make_registry()
        reg.grant("a", "weather:read")
        allowed_at: list[float] = []
        for gap in gaps:
            clock["now"] += gap
            if reg.authorize_call("a", "get_weather").allowed:
                allowed_at.append(clock["now"])
        for t in allowed_at:
            assert sum(1 for u in allowed_at if t - 60 < u <= t) <= 2
    finally:
        limits_memory.time = original  # type: ignore[assignment]


def test_rate_limit_expires_after_its_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-second window really frees up once the clock passes it (simulated clock, no sleep)."""
    clock = {"now": 2_000.0}
    monkeypatch.setattr(limits_memory, "time", type("FakeTime", (), {"time": staticmethod(lambda: clock["now"])}))
    reg = ToolRegistry()
    reg.register(get_weather, scopes=["w"], rate_limit="2/second")
    reg.grant("a", "w")
    assert reg.authorize_call("a", "get_weather").allowed
    assert reg.authorize_call("a", "get_weather").allowed
    assert not reg.authorize_call("a", "get_weather").allowed
    clock["now"] += 0.99
    assert not reg.authorize_call("a", "get_weather").allowed
    clock["now"] += 0.02  # both hits are now more than one second old
    assert reg.authorize_call("a", "get_weather").allowed


class _History:
    def __init__(self, events) -> None:
        self.events = events

    async def get_events(self):
        return list(self.events)


def _context(*events) -> SimpleNamespace:
    return SimpleNamespace(stream=SimpleNamespace(history=_History(events)))


async def test_approver_rules_defaults_and_fallback() -> None:
    call = ToolCallEvent("wire_money", id="c1", arguments='{"amount": 5}')
    req = ToolApprovalRequest("Agent wants to call `wire_money`. Approve? (y/n)", tool_call_id="c1")
    ctx = _context(call)
    assert await Approver({"wire_money": True})(req, ctx) == "y"
    assert await Approver({"wire_money": lambda a: a["amount"] > 10})(req, ctx) == "n"
    assert await Approver()(req, ctx) == "n"
    assert await Approver(default=True)(req, ctx) == "y"

    def broken(args: dict) -> bool:
        raise KeyError("amount")

    assert await Approver({"wire_money": broken})(req, ctx) == "n"
    assert await Approver()(HumanInputRequest("What is your name?"), ctx) == "no"
    assert await Approver(fallback=lambda e: "Ada")(HumanInputRequest("What is your name?"), ctx) == "Ada"
    approver = Approver(default=True)
    assert approver.decide("anything", {}) is True and approver.decisions == [("anything", True)]


async def test_approver_judges_the_call_not_the_prose() -> None:
    """The tool name and arguments come from the call with the request's tool_call_id, never from the
    question's text, which a crafted argument could make read like another call."""
    real = ToolCallEvent("wire_money", id="c9", arguments='{"amount": 5000, "to": "mallory"}')
    spoofed = ToolApprovalRequest(
        'Agent wants to call `get_weather` with {"amount": 1}. Approve? (y/n)', tool_call_id="c9"
    )
    approver = Approver({"wire_money": lambda a: a["amount"] <= 100, "get_weather": True})
    assert await approver(spoofed, _context(real)) == "n"
    assert approver.decisions == [("wire_money", False)]
    # A request naming no call in the conversation is refused, whatever its prose says.
    assert await approver(spoofed, _context()) == "n"
    assert approver.decisions[-1] == ("?", False)


async def test_a_sandbox_refusal_is_logged_as_denied_and_not_billed(tmp_path) -> None:
    """Issue 10 bug 1: the audit logged SafeFiles' DENIED read as ``ok`` and charged its cost."""
    (tmp_path / "notes.txt").write_text("plan")
    files = SafeFiles(tmp_path)
    reg = ToolRegistry()
    reg.register(files.read_file, scopes=["files:read"], cost_usd=0.01)
    reg.grant("reader", "files:read")
    cfg = OfflineModel(seed=5)
    cfg.add_rule(tool_rule("read_file", keywords=["read"], arguments=lambda p: {"path": p.user.split()[-1]}))
    agent = ag2.Agent(
        "reader", "Help.", config=cfg, tools=reg.tools_for("reader"), middleware=[reg.authorizer("reader")]
    )
    for path in ("notes.txt", "../etc/passwd", "/etc/passwd"):
        await agent.ask(f"read {path}")
    frame = reg.calls_frame()
    assert list(frame.outcome) == ["ok", "denied", "denied"]
    assert list(frame.reason) == ["ok", "refused", "refused"]
    assert list(frame.cost_usd) == [0.01, 0.0, 0.0] and reg.spend("reader") == 0.01


async def test_a_tool_that_raises_tooldenied_is_refused_without_a_traceback() -> None:
    def vault_open(door: str) -> str:
        """Open a door."""
        raise ToolDenied(f"door {door!r} is sealed")

    reg = ToolRegistry()
    reg.register(vault_open, scopes=["vault"], cost_usd=1.0)
    reg.grant("a", "vault")
    cfg = OfflineModel(seed=6)
    cfg.add_rule(tool_rule("vault_open", keywords=["open"], arguments={"door": "main"}))
    agent = ag2.Agent("a", "Help.", config=cfg, tools=reg.tools_for("a"), middleware=[reg.authorizer("a")])
    body = (await agent.ask("open the vault")).body
    assert "DENIED: door 'main' is sealed" in body and "Traceback" not in body
    assert reg.calls_frame()[["outcome", "reason", "cost_usd"]].values.tolist() == [["denied", "refused", 0.0]]


async def test_pii_tool_gets_real_values_after_approval() -> None:
    got: list[str] = []

    def send_email(to: str) -> str:
        """Send an email."""
        got.append(to)
        return "sent"

    reg = ToolRegistry()
    reg.register(send_email, scopes=["mail:send"], approval=True, receives_pii=True)
    reg.grant("a", "mail:send")
    seen_by_approver: list[str] = []

    def hook(event):
        seen_by_approver.append(event.content)
        return "y"

    cfg = OfflineModel(seed=3)
    cfg.add_rule(tool_rule("send_email", keywords=["email"], arguments=lambda p: {"to": "[EMAIL_ADDRESS_1]"}))
    agent = ag2.Agent(
        "a",
        "Help.",
        config=cfg,
        tools=reg.tools_for("a"),
        middleware=[
            GuardrailMiddleware("a", GuardrailPolicy(restore={"send_email": {"to": ["EMAIL_ADDRESS"]}})),
            reg.authorizer("a"),
        ],
        hitl_hook=hook,
    )
    reply = await agent.ask("email ana@example.org")
    assert got == ["ana@example.org"]
    assert "ana@example.org" not in seen_by_approver[0] and "[EMAIL_ADDRESS_1]" in seen_by_approver[0]
    assert "ana@example.org" not in repr([e.to_dict() for e in await reply.history.get_events()])


def test_authorizer_describe_and_validation() -> None:
    reg = make_registry()
    reg.grant("a", "weather:read")
    d = reg.authorizer("a").describe()
    assert d.kind == "ToolAuthorizer" and d.config == {"agent": "a", "tools": ("get_weather",)}
    with pytest.raises(ConfigError):
        reg.authorizer("")
