"""Tests of the support bot, run with the agentops pytest plugin: pytest -p agentops.testing tests/"""

import json

import ag2
import pytest
from ag2.events import ToolCallEvent
from ag2.testing import TestConfig, TrackingConfig
from hypothesis import given, settings
from hypothesis import strategies as st
from support_bot import ROUTER_PROMPT, Route, build_agent, lookup_order, offline_model, route

from agentops.models import model_config
from agentops.testing import ModelRequestsForbidden, chat_completion, chat_server

URL = "http://fake.invalid/v1"


# 1. plain unit tests: the tool is a function
def test_lookup_order_knows_and_refuses():
    assert json.loads(lookup_order("ab-1234"))["status"] == "shipped"
    assert json.loads(lookup_order("ZZ-0000")) == {"error": "unknown order 'ZZ-0000'"}


# 2. the offline model and the app's rules drive a real AG2 agent
async def test_agent_answers_order_questions_with_the_tool():
    reply = await build_agent(offline_model()).ask("Where is my order AB-1234?")
    assert "shipped" in reply.body
    assert "lookup_order" in {e.name for e in await reply.history.get_events() if isinstance(e, ToolCallEvent)}


async def test_router_routes_billing_offline():
    assert await route(offline_model(), "I was charged twice") == Route(route="billing")


# 3. AG2's own scripted model: exact turns, and what the model was sent
async def test_agent_with_ag2_testconfig_scripts_each_turn():
    tracking = TrackingConfig(
        TestConfig(ToolCallEvent("lookup_order", id="c1", arguments='{"order_id": "CD-5678"}'), "Still processing.")
    )
    reply = await build_agent(tracking).ask("order CD-5678?")
    assert reply.body == "Still processing."
    assert "lookup_order" in {t.function.name for t in tracking.calls[0].tools}


# 4. the package's fixtures: an offline model to register rules on
async def test_fixture_offline_model_takes_rules(offline_model):
    from agentops.models import rule

    offline_model.add_rule(rule("greet", "Hello!", user_contains="hi"))
    assert (await ag2.Agent("a", config=offline_model).ask("hi there")).body == "Hello!"


# 5. what real servers do, without a network: a fake OpenAI-compatible server
async def test_router_survives_a_server_that_rejects_json_schema():
    server = chat_server([chat_completion('Sure! {"route": "shipping"}')], reject=["json_schema"])
    config = model_config("compatible", "fake-1", base_url=URL, transport=server)
    assert await route(config, "Where is my parcel?") == Route(route="shipping")


async def test_malformed_tool_arguments_go_back_to_the_model():
    server = chat_server(
        [
            chat_completion(None, tool_calls=[("lookup_order", '{"order_id": "AB-')]),
            chat_completion("Sorry, which order?"),
        ]
    )
    reply = await build_agent(model_config("compatible", "fake-1", base_url=URL, transport=server)).ask("order?")
    assert reply.body == "Sorry, which order?"
    assert "not valid JSON" in server.requests[1]["messages"][-1]["content"]


# 6. a property: any order id gives JSON, never an exception
@settings(max_examples=30, deadline=None, database=None)  # no example files written
@given(st.text(max_size=20))
def test_lookup_order_always_returns_json(order_id):
    result = json.loads(lookup_order(order_id))
    assert set(result) in ({"status", "carrier"}, {"error"})


# 7. a cassette of a real model (SmolLM2-135M), replayed offline
async def test_router_on_recorded_real_model_text(replay_config):
    config = replay_config("cassettes/route.yaml")
    assert await route(config, "I was charged twice for my order") == Route(route="billing")
    assert await route(config, "Where is my parcel?") == Route(route="billing")  # the small model's real mistake


# 8. the plugin forbids real model requests
def test_real_backends_are_refused_in_tests():
    with pytest.raises(ModelRequestsForbidden):
        model_config("compatible", "any-model", base_url="http://127.0.0.1:8080/v1")


def test_router_prompt_names_the_routes():
    assert all(r in ROUTER_PROMPT for r in ("billing", "shipping", "other"))
