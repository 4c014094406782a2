"""Tests for telemetry redaction: one secret catalogue, JSON-escaped text, names dropped whole, the canary."""

from __future__ import annotations

import io
import json
import logging
import urllib.error
import urllib.request

import ag2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from telemetry_support import CANARY, logged_telemetry

from agentops.models import OfflineModel, tool_rule
from agentops.telemetry import (
    Telemetry,
    redact,
)


@pytest.fixture()
def telemetry():
    yield from logged_telemetry()


# -- redaction ------------------------------------------------------------------------------------

SECRETS = {
    "openai_key": "sk-proj-abcDEF1234567890ghijKLMN",
    "stripe_key": "sk_live_51HxyzABCDEFGHIJ0123",
    "aws_access_key": "AKIAZ7QRTXW3MV4KP2LD",
    "github_token": "ghp_" + "Zq8mP2vL9xR4tY7wK3nB6cD1fG5hJ0sA2eUi",
    "slack_token": "xoxb-123456789012-abcdefABCDEF",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "email": "jane.doe+ops@example.co.uk",
}


PLACEHOLDER = {kind: "[EMAIL_ADDRESS]" if kind == "email" else "[SECRET]" for kind in SECRETS}

# Assignments the guardrails catalogue redacts in plain text (issue 11: they leaked once JSON-escaped).
ASSIGNED = {
    "password": "hunter2hunter2",
    "token": "tok_8f7a6e5d4c3b2a19",
    "secret": "Zq8mP2vL9xR4tY7wK3",
}


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_redact_known_formats(kind):
    secret = SECRETS[kind]
    out = redact(f"before {secret} after")
    assert secret not in out
    assert out == f"before {PLACEHOLDER[kind]} after"


def test_redaction_has_one_catalogue_the_guardrails_scanner(monkeypatch):
    """Telemetry keeps no secret formats of its own: a scanner that finds nothing lets text through."""
    from agentops import guardrails
    from agentops.telemetry import _redact

    monkeypatch.setattr(guardrails, "redact", lambda text, findings=None: text)
    monkeypatch.setattr(guardrails, "scan", lambda text, entities=None: [])
    _redact.forget()
    try:
        assert redact(f"key {SECRETS['openai_key']}") == f"key {SECRETS['openai_key']}"
    finally:
        monkeypatch.undo()
        _redact.forget()
    assert SECRETS["openai_key"] not in redact(f"key {SECRETS['openai_key']}")


def test_redact_uses_the_guardrails_scanner_for_what_no_key_format_covers():
    text = "card 4111 1111 1111 1111, call me on +44 20 7946 0958, password=Tr0ub4dor&3x"
    out = redact(text)
    assert "[CREDIT_CARD]" in out and "[PHONE_NUMBER]" in out and "[SECRET]" in out
    assert "4111" not in out and "7946" not in out and "Tr0ub4dor" not in out
    assert redact("card 4111 1111 1111 1112") == "card 4111 1111 1111 1112"  # fails Luhn: no card


def test_redact_leaves_clean_text_and_converts_non_strings():
    assert redact('a "quoted" line\nwith unicode ✓') == 'a "quoted" line\nwith unicode ✓'
    assert redact(42) == "42"
    assert redact('{"path": "C:\\\\temp", "q": "say \\"hi\\""}') == '{"path": "C:\\\\temp", "q": "say \\"hi\\""}'


@pytest.mark.parametrize("key", sorted(ASSIGNED))
def test_assignments_are_redacted_inside_json_escaped_text(key):
    value = ASSIGNED[key]
    plain = f'login with {key}="{value}" please'
    assert value not in redact(plain)
    once = json.dumps({"content": plain})  # a captured message: quotes become \"
    twice = json.dumps([{"arguments": once}])  # JSON inside JSON: \\\"
    for text in (once, twice, once[:-3]):  # [:-3]: a truncated attribute is no longer valid JSON
        out = redact(text)
        assert value not in out and "[SECRET]" in out
    assert json.loads(redact(once)) == {"content": f'login with {key}="[SECRET]" please'}
    assert json.loads(json.loads(redact(twice))[0]["arguments"]) == {"content": f'login with {key}="[SECRET]" please'}


@settings(max_examples=150, deadline=None)
@given(prefix=st.text(max_size=30), suffix=st.text(max_size=30), kind=st.sampled_from(sorted(SECRETS)))
def test_redact_never_leaks_a_planted_secret(prefix, suffix, kind):
    secret = SECRETS[kind]
    out = redact(prefix + " " + secret + " " + suffix)
    assert secret not in out
    assert redact(out) == out  # idempotent: placeholders are never re-matched


@settings(max_examples=150, deadline=None)
@given(
    words=st.lists(st.sampled_from(["hi", "my", "the", "x=1", "a\\b", '"q"', "\n", "ok:", "ünï"]), max_size=6),
    key=st.sampled_from(sorted(ASSIGNED)),
    quote=st.sampled_from(['"', "'", ""]),
)
def test_what_plain_redaction_removes_json_escaping_does_not_bring_back(words, key, quote):
    value = ASSIGNED[key]
    text = " ".join([*words, f"{key}={quote}{value}{quote}", *words])
    assert value not in redact(text)
    for encoded in (json.dumps(text), json.dumps({"m": text}), json.dumps(json.dumps(text))):
        assert value not in redact(encoded)


# -- the canary -----------------------------------------------------------------------------------


def leaky_tool(token: str) -> str:
    """Fails and quotes its argument, as careless tools do."""
    raise ValueError(f"token {token} rejected")


@pytest.mark.parametrize("capture", [False, True])
async def test_canary_secret_appears_in_no_log_span_or_metric_label(capture):
    reg = CollectorRegistry()
    t = Telemetry(registry=reg, capture_content=capture, logger=logging.getLogger(f"agentops.canary{capture}"))
    buf = io.StringIO()
    t.log_to(buf, level=logging.DEBUG)
    cfg = OfflineModel("offline-1", seed=3)
    cfg.add_rule(tool_rule("leaky_tool", keywords=["token"], arguments=lambda p: {"token": CANARY}))
    agent = ag2.Agent(f"canary{capture}", "Be brief.", config=cfg, tools=[leaky_tool])
    t.instrument(agent)
    await agent.ask(f"Please check my token {CANARY} and mail me at ops@example.com")
    t.listener(
        "guardrail.finding",
        {"agent": agent.name, "entity_type": CANARY, "where": "input", "action": "redact"},
    )
    with t.serve_metrics(port=0) as server:
        exposition = urllib.request.urlopen(server.url, timeout=5).read().decode()
    logs = buf.getvalue()
    spans = json.dumps(t.store.records())
    labels = [v for fam in text_string_to_metric_families(exposition) for s in fam.samples for v in s.labels.values()]
    assert logs and spans and labels
    assert CANARY not in logs
    assert CANARY not in spans
    assert not any(CANARY in v for v in labels)
    assert "ops@example.com" not in logs + spans
    # the key really was there to leak: the tool failed on it, and captured content shows the placeholder
    assert "ValueError" in spans and "token [SECRET] rejected" in spans
    if capture:
        assert "gen_ai.input.messages" in spans and "[SECRET]" in logs and "[EMAIL_ADDRESS]" in logs
    else:
        assert "gen_ai.input.messages" not in spans
    # a key passed where a name belongs is dropped whole, never half-rewritten
    finding = next(e for e in t.store.events().itertuples() if e.event == "guardrail.finding")
    assert finding.attributes["entity_type"] == "[REDACTED]"
    assert "[REDACTED]" in labels
    t.shutdown()


async def test_a_model_name_carrying_a_secret_is_dropped_from_span_names(telemetry):
    agent = ag2.Agent("a", "Be brief.", config=OfflineModel(CANARY, seed=0))
    telemetry.instrument(agent)
    await agent.ask("hi")
    chat = telemetry.store.llm_calls().iloc[0]
    assert chat["name"] == "chat [REDACTED]" and chat["model"] == "[REDACTED]"
    assert CANARY not in json.dumps(telemetry.store.records()) + telemetry.buf.getvalue()


@settings(max_examples=150, deadline=None)
@given(prefix=st.text(max_size=20), suffix=st.text(max_size=20), kind=st.sampled_from(sorted(SECRETS)))
def test_a_name_carrying_a_secret_is_dropped_whole(prefix, suffix, kind):
    t = Telemetry()
    value = prefix + " " + SECRETS[kind] + " " + suffix
    assert t.metrics.label("agent", value) == "[REDACTED]"
    t.listener("tool.denied", {"agent": "a", "tool": value, "reason": value})
    attrs = t.store.events()["attributes"].iloc[0]
    assert attrs["tool"] == "[REDACTED]" and SECRETS[kind] not in attrs["reason"]
