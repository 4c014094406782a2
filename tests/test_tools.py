"""Tests for agentops.tools: default deny, scopes, sliding-window rate limits that expire, approvals
through AG2's flow, DENIED results instead of exceptions, and file tools confined to a root."""

from __future__ import annotations

import os
import sys
import time

import ag2
import limits.storage.memory as limits_memory
import pytest
from ag2.events import HumanInputRequest, ToolApprovalRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentops.errors import ConfigError
from agentops.guardrails import GuardrailMiddleware, GuardrailPolicy
from agentops.models import OfflineModel, tool_rule
from agentops.tools import APPROVAL_DENIED, Approver, PathOutsideRoot, SafeFiles, ToolRegistry


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


def test_rate_limit_really_expires_in_wall_time() -> None:
    reg = ToolRegistry()
    reg.register(get_weather, scopes=["w"], rate_limit="2/second")
    reg.grant("a", "w")
    assert reg.authorize_call("a", "get_weather").allowed
    assert reg.authorize_call("a", "get_weather").allowed
    assert not reg.authorize_call("a", "get_weather").allowed
    time.sleep(1.05)
    assert reg.authorize_call("a", "get_weather").allowed


def test_approver_rules_defaults_and_fallback() -> None:
    req = ToolApprovalRequest(
        'Agent wants to call `wire_money` with {"amount": 5}. Approve? (y/n)', tool_call_id="c1"
    )
    assert Approver({"wire_money": True})(req) == "y"
    assert Approver({"wire_money": lambda a: a["amount"] > 10})(req) == "n"
    assert Approver()(req) == "n"
    assert Approver(default=True)(req) == "y"

    def broken(args: dict) -> bool:
        raise KeyError("amount")

    assert Approver({"wire_money": broken})(req) == "n"
    assert Approver()(HumanInputRequest("What is your name?")) == "no"
    assert Approver(fallback=lambda e: "Ada")(HumanInputRequest("What is your name?")) == "Ada"


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


# ------------------------------------------------------------------------------------------------
# SafeFiles
# ------------------------------------------------------------------------------------------------


@pytest.fixture()
def sandbox(tmp_path):
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("hello")
    (tmp_path / "secret.txt").write_text("top secret")
    return root, tmp_path


def test_safe_files_read_write_list_inside_root(sandbox) -> None:
    root, _ = sandbox
    files = SafeFiles(root)
    assert files.read_file("docs/a.txt") == "hello"
    assert files.write_file("docs/b.txt", "new") == "wrote 3 characters to docs/b.txt"
    assert (root / "docs" / "b.txt").read_text() == "new"
    assert files.list_dir() == "docs/"
    assert files.list_dir("docs") == "a.txt\nb.txt"
    assert files.read_file("docs/missing.txt").startswith("ERROR: no file")
    assert files.write_file("nodir/x.txt", "x").startswith("ERROR: directory")
    assert files.list_dir("docs/a.txt").startswith("ERROR:")
    assert files.read_file("docs").startswith(("ERROR", "DENIED"))


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "docs/../../secret.txt",
        "/etc/passwd",
        "~/.ssh/id_rsa",
        "C:\\Windows\\win.ini",
        "..\\secret.txt",
        "",
        "docs/\x00a.txt",
    ],
)
def test_safe_files_refuse_traversal_and_absolute_paths(sandbox, path: str) -> None:
    root, _ = sandbox
    files = SafeFiles(root)
    assert files.read_file(path).startswith("DENIED:")
    assert files.write_file(path, "x").startswith("DENIED:")
    with pytest.raises(PathOutsideRoot):
        files.resolve(path)


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_safe_files_refuse_symlinks_out_of_root(sandbox) -> None:
    root, outside = sandbox
    os.symlink(outside / "secret.txt", root / "docs" / "link.txt")
    os.symlink(outside, root / "escape")
    os.symlink(root / "docs" / "a.txt", root / "inside_link.txt")
    files = SafeFiles(root)
    assert files.read_file("docs/link.txt").startswith("DENIED:")
    assert files.read_file("escape/secret.txt").startswith("DENIED:")
    assert files.write_file("docs/link.txt", "pwned").startswith("DENIED:")
    assert (outside / "secret.txt").read_text() == "top secret"
    assert files.list_dir("escape").startswith("DENIED:")
    assert files.read_file("inside_link.txt") == "hello"  # a link that stays inside the root is fine


def test_safe_files_size_limit_and_bad_root(sandbox, tmp_path) -> None:
    root, _ = sandbox
    (root / "big.txt").write_text("x" * 50)
    assert SafeFiles(root, max_bytes=10).read_file("big.txt").startswith("ERROR: 'big.txt' is larger")
    with pytest.raises(ConfigError, match="not a directory"):
        SafeFiles(tmp_path / "missing")


async def test_file_tools_through_an_agent_refuse_traversal(sandbox) -> None:
    root, _ = sandbox
    files = SafeFiles(root)
    reg = ToolRegistry()
    reg.register(files.read_file, scopes=["files:read"])
    reg.grant("reader", "files:read")
    cfg = OfflineModel(seed=4)
    cfg.add_rule(tool_rule("read_file", keywords=["read"], arguments=lambda p: {"path": p.user.split()[-1]}))
    agent = ag2.Agent(
        "reader", "Help.", config=cfg, tools=reg.tools_for("reader"), middleware=[reg.authorizer("reader")]
    )
    assert "hello" in (await agent.ask("read docs/a.txt")).body
    body = (await agent.ask("read ../secret.txt")).body
    assert "DENIED" in body and "top secret" not in body
