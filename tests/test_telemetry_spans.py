"""Tests for span redaction at export (agentops.telemetry.spans): the fast read of the SDK's attributes
gives exactly what reading them through the public mapping gives."""

from __future__ import annotations

from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from telemetry_support import CANARY

from agentops.telemetry._redact import clean_str
from agentops.telemetry.spans import RedactingSpanProcessor, _plain, _span_attrs, clean_attrs

KEYS = ["gen_ai.agent.name", "gen_ai.request.model", "gen_ai.tool.call.id", "error.message", "custom", "tool"]
VALUES = st.one_of(
    st.sampled_from(["support", "offline-1", "SECRET", CANARY, f"key={CANARY}", "mail jane@example.com", ""]),
    st.text(max_size=30),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.tuples(st.sampled_from(["stop", CANARY, "a b"]), st.text(max_size=10)),
)


def _reference(attrs: dict) -> dict:
    """Every attribute cleaned one by one through the public mapping (what the fast path must equal)."""
    out = {}
    for key, value in attrs.items():
        if isinstance(value, str):
            value = clean_str(key, value)
        elif isinstance(value, tuple) and value and isinstance(value[0], str):
            value = tuple(clean_str(key, v) for v in value)
        out[key] = value
    return out


def test_the_pinned_sdk_keeps_the_plain_dict_the_fast_path_reads():
    bounded = BoundedAttributes(attributes={"a": "x"}, immutable=False)
    assert _plain(bounded) is bounded._dict and _plain(MappingProxyType(bounded)) is not bounded._dict
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("s", attributes={"k": "v"}):
        pass
    (span,) = exporter.get_finished_spans()
    assert _plain(_span_attrs(span)) == {"k": "v"} and type(_plain(_span_attrs(span))) is dict


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6))
def test_fast_attribute_cleaning_equals_the_reference(attrs):
    expected = _reference(attrs)
    for mapping in (attrs, BoundedAttributes(attributes=attrs, immutable=False), MappingProxyType(attrs)):
        got = clean_attrs(mapping)
        assert (got if got is not None else dict(attrs)) == expected
        assert got is None or got != dict(attrs)  # None exactly when nothing changed


def test_processor_redacts_a_finished_span_and_forwards_a_clean_one_unchanged():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(RedactingSpanProcessor(SimpleSpanProcessor(exporter)))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("chat offline-1", attributes={"gen_ai.request.model": "offline-1", "n": 3}):
        pass
    with tracer.start_as_current_span("execute_tool x", attributes={"custom": f"token {CANARY}", "n": 1}):
        pass
    clean, leaky = exporter.get_finished_spans()
    assert dict(clean.attributes) == {"gen_ai.request.model": "offline-1", "n": 3}
    assert dict(leaky.attributes) == {"custom": "token [SECRET]", "n": 1}


def test_span_names_are_checked_part_by_part_and_remembered_only_when_unchanged():
    from agentops.telemetry._redact import _CLEAN_SPAN_NAMES, REDACTED_NAME, forget, span_name

    forget()
    assert span_name("chat offline-1") == "chat offline-1" and "chat offline-1" in _CLEAN_SPAN_NAMES
    assert span_name(f"chat {CANARY}") == f"chat {REDACTED_NAME}" and f"chat {CANARY}" not in _CLEAN_SPAN_NAMES
    assert span_name(CANARY) == REDACTED_NAME
    forget()
    assert not _CLEAN_SPAN_NAMES
