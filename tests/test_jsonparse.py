import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from agentops.errors import MalformedOutputError
from agentops.jsonparse import first_json_object, json_objects, parse_json_as


class Route(BaseModel):
    route: str


def test_finds_fenced_then_inline_objects_once():
    text = 'Here: ```json\n{"route": "billing"}\n``` and also {"route": "tech", "n": [1, {"x": 2}]}.'
    assert json_objects(text) == [{"route": "billing"}, {"route": "tech", "n": [1, {"x": 2}]}]


def test_python_literal_objects_are_read():
    assert first_json_object("Verdict: {'score': 8, 'ok': True} done") == {"score": 8, "ok": True}


def test_no_object_is_a_retryable_malformed_output_error():
    with pytest.raises(MalformedOutputError, match=r"expected a JSON object.*'no json here'") as info:
        first_json_object("no json here")
    assert info.value.retryable is True
    assert json_objects(None) == [] and json_objects("{ unbalanced") == []


def test_parse_json_as_takes_the_first_object_that_validates_and_explains_refusals():
    assert parse_json_as('{"x": 1} then {"route": "billing"}', Route.model_validate) == Route(route="billing")
    with pytest.raises(MalformedOutputError, match=r"router: no JSON object in the answer fits \(\{\"x\": 1\}"):
        parse_json_as('{"x": 1}', Route.model_validate, what="router")
    with pytest.raises(MalformedOutputError, match="router: no JSON object in the model's answer"):
        parse_json_as("nothing", Route.model_validate, what="router")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(
    obj=st.dictionaries(st.text(max_size=6), json_values, min_size=1, max_size=4),
    before=st.text(alphabet=st.characters(blacklist_characters="{}`'\"\\"), max_size=20),
    after=st.text(alphabet=st.characters(blacklist_characters="{}`'\"\\"), max_size=20),
    fenced=st.booleans(),
)
def test_an_object_embedded_in_prose_is_always_found_first(obj, before, after, fenced):
    body = json.dumps(obj)
    text = f"{before}```json\n{body}\n```{after}" if fenced else f"{before} {body} {after}"
    assert first_json_object(text) == obj
