"""Tests for agentops.jsonparse: JSON objects found in model prose, fences, quotes, hostile input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from agentops import jsonparse
from agentops.errors import EmptyOutputError, MalformedOutputError
from agentops.jsonparse import find_json_objects, parse_json_object, unfence


class Route(BaseModel):
    route: str
    confidence: float = Field(ge=0, le=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', [{"a": 1}]),
        ('Sure! Here it is: {"a": 1}. Anything else?', [{"a": 1}]),
        ('```json\n{"a": 1}\n```', [{"a": 1}]),
        ("{'a': 1, 'ok': True, 'none': None}", [{"a": 1, "ok": True, "none": None}]),
        ('outer {"a": {"b": {"c": 1}}} done', [{"a": {"b": {"c": 1}}}]),
        ('{not json} but {"b": 2}', [{"b": 2}]),
        (
            '{"reason": "a } brace and a { brace in a string", "x": 1}',
            [{"reason": "a } brace and a { brace in a string", "x": 1}],
        ),
        ("it's {\"x\": 1} and don't", [{"x": 1}]),  # apostrophes in prose
        ('{it\'s fine} {"x": 1}', [{"x": 1}]),  # an apostrophe inside braces
        ('{"overall": 8', []),  # truncated
        ("[1, 2, 3]", []),  # arrays are not objects
        ("no braces at all", []),
        ("", []),
    ],
)
def test_find_json_objects(text, expected):
    assert find_json_objects(text) == expected


def test_fenced_objects_come_first_and_nested_ones_are_not_repeated():
    text = 'Draft: {"n": 1}\n```json\n{"n": 2, "inner": {"n": 3}}\n```\nthen {"n": 4}'
    assert find_json_objects(text) == [{"n": 2, "inner": {"n": 3}}, {"n": 1}, {"n": 4}]


def test_a_failed_outer_span_lets_its_children_be_tried():
    assert find_json_objects('{ note: see {"a": 1} and {"b": 2} }') == [{"a": 1}, {"b": 2}]


def test_parse_json_object_first_valid_for_a_model():
    text = 'First {"route": "x", "confidence": 7} then {"route": "billing", "confidence": 0.9}'
    assert parse_json_object(text, Route) == Route(route="billing", confidence=0.9)
    assert parse_json_object(text) == {"route": "x", "confidence": 7}


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        (None, EmptyOutputError, "no text"),
        ("   ", EmptyOutputError, "no text"),
        ("I pick billing.", MalformedOutputError, "no JSON object in the answer: 'I pick billing.'"),
        ('{ "json": { "steps": [', MalformedOutputError, r"cut off before its end \(.*raise max_tokens\)"),
        ("Rating: 8} of 10", MalformedOutputError, "no JSON object in the answer"),
        ('{"route": "x", "confidence": 7}', MalformedOutputError, r"valid Route \(confidence: Input should be"),
    ],
)
def test_parse_json_object_errors(text, error, message):
    with pytest.raises(error, match=message):
        parse_json_object(text, Route)


def test_unfence():
    assert unfence("```python\nprint(1)\n```") == "print(1)"
    assert unfence('Here:\n```\n{"a": 1}\n```') == '{"a": 1}'
    assert unfence('```{"a": 1}```') == '{"a": 1}'
    assert unfence("  plain  ") == "plain"


@settings(max_examples=200, deadline=None)
@given(
    obj=st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=10), st.booleans()), max_size=4),
    before=st.text(alphabet=st.characters(blacklist_characters="{}'\"`"), max_size=30),
    after=st.text(alphabet=st.characters(blacklist_characters="{}'\"`"), max_size=30),
    fenced=st.booleans(),
)
def test_any_object_is_recovered_from_surrounding_prose(obj, before, after, fenced):
    body = json.dumps(obj)
    text = f"{before}\n```json\n{body}\n```\n{after}" if fenced else f"{before} {body} {after}"
    assert find_json_objects(text) == [obj]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("{}[]\"':,ab1 \\\n`")), max_size=300))
def test_hostile_text_never_raises_and_decodes_at_most_four_times_its_length(text):
    decoded = []
    original = jsonparse._decode

    def counting(fragment):
        decoded.append(len(fragment))
        return original(fragment)

    jsonparse._decode = counting
    try:
        found = find_json_objects(text)
    finally:
        jsonparse._decode = original
    assert all(isinstance(o, dict) for o in found)
    assert sum(decoded) <= 3 * 4 * len(text)  # at most three passes, each character decoded ≤ 4 times per pass


@pytest.mark.parametrize("text", ["{" * 20_000, "{" * 10_000 + "}" * 10_000, '{"a":' * 5_000, "{'" * 10_000])
def test_nested_or_unbalanced_input_stays_linear(text, monkeypatch):
    decoded = []
    original = jsonparse._decode
    monkeypatch.setattr(jsonparse, "_decode", lambda f: decoded.append(len(f)) or original(f))
    find_json_objects(text)
    assert sum(decoded) <= 3 * 4 * len(text)
