"""LangChain and LlamaIndex tools as AG2 tools: names, descriptions, schemas, async, authorization."""

from __future__ import annotations

import asyncio
import inspect

import ag2
import pytest

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")

from langchain_core.tools import tool as lc_tool
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel, Field

from agentops.errors import ConfigError
from agentops.models import OfflineModel, tool_rule
from agentops.serve.integrations import (
    from_langchain,
    from_llamaindex,
    langchain_function,
    llamaindex_function,
)
from agentops.tools import ToolRegistry

CALLS: list[str] = []


class StockArgs(BaseModel):
    sku: str = Field(description="the product code")
    warehouse: str = Field("main", description="warehouse name")


@lc_tool(args_schema=StockArgs)
async def stock_level(sku: str, warehouse: str = "main") -> str:
    """Units in stock for a SKU."""
    CALLS.append(f"stock:{sku}")
    return f"{sku}@{warehouse}: 12 units"


async def shipping_days(country: str, express: bool = False) -> int:
    """Days to ship to a country."""
    CALLS.append(f"ship:{country}")
    return 1 if express else {"FR": 2}.get(country, 7)


LI_TOOL = FunctionTool.from_defaults(async_fn=shipping_days, name="shipping_days", description="Days to ship.")


def _props(schema):
    return {k: {f: v[f] for f in ("type", "default", "description") if f in v} for k, v in schema["properties"].items()}


def test_langchain_tool_keeps_name_description_schema_and_async():
    tool = from_langchain(stock_level)
    fn = tool.schema.function
    assert (fn.name, fn.description) == ("stock_level", "Units in stock for a SKU.")
    assert _props(fn.parameters) == _props(StockArgs.model_json_schema())
    assert fn.parameters["required"] == ["sku"]
    assert inspect.iscoroutinefunction(langchain_function(stock_level))


def test_llamaindex_tool_keeps_name_description_schema_and_async():
    tool = from_llamaindex(LI_TOOL)
    fn = tool.schema.function
    assert (fn.name, fn.description) == ("shipping_days", "Days to ship.")
    expected = LI_TOOL.metadata.fn_schema.model_json_schema()
    assert _props(fn.parameters) == _props(expected) and fn.parameters["required"] == ["country"]
    assert asyncio.run(llamaindex_function(LI_TOOL)(country="FR", express=True)) == 1


def test_agent_calls_both_tools_through_their_async_entry_points():
    CALLS.clear()
    model = OfflineModel(
        rules=[
            tool_rule("stock_level", keywords=["stock"], arguments={"sku": "A1"}),
            tool_rule("shipping_days", keywords=["ship"], arguments={"country": "FR"}),
        ]
    )
    agent = ag2.Agent("shop", "x", config=model, tools=[from_langchain(stock_level), from_llamaindex(LI_TOOL)])
    assert asyncio.run(agent.ask("stock?")).body == "stock_level returned: A1@main: 12 units."
    assert asyncio.run(agent.ask("ship?")).body == "shipping_days returned: 2."
    assert CALLS == ["stock:A1", "ship:FR"]


def test_registry_scopes_apply_to_foreign_tools():
    CALLS.clear()
    registry = ToolRegistry()
    registry.register(langchain_function(stock_level), scopes=["inventory:read"])
    registry.register(llamaindex_function(LI_TOOL), scopes=["shipping:read"])
    registry.grant("shop", "inventory:read")
    offered = registry.tools_for("shop")
    assert [t.schema.function.name for t in offered] == ["stock_level"]
    assert _props(offered[0].schema.function.parameters) == _props(StockArgs.model_json_schema())
    rules = [tool_rule("shipping_days", keywords=["ship"], arguments={"country": "FR"})]
    sneaky = ag2.Agent(
        "shop",
        "x",
        config=OfflineModel(rules=rules),
        tools=[from_llamaindex(LI_TOOL)],  # reaches the agent another way: the authorizer still refuses
        middleware=[registry.authorizer("shop")],
    )
    reply = asyncio.run(sneaky.ask("ship?"))
    assert "DENIED" in reply.body and CALLS == []


def test_rejects_non_tools():
    with pytest.raises(ConfigError, match="LangChain BaseTool"):
        langchain_function(len)
    with pytest.raises(ConfigError, match="LlamaIndex tool"):
        llamaindex_function(len)
