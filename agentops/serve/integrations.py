"""LangChain and LlamaIndex tools as AG2 tools: same name, description, argument schema, async.

:func:`langchain_function` / :func:`llamaindex_function` turn a foreign tool into a plain async Python
function whose signature is built from the tool's pydantic argument model (types, defaults and field
descriptions kept). That function is what ``ag2.tool`` and :class:`agentops.tools.ToolRegistry` take, so
scopes, rate limits, approvals, the authorizer middleware, guardrails and budgets apply to a foreign tool
exactly as to a native one. :func:`from_langchain` / :func:`from_llamaindex` wrap it with ``ag2.tool``
directly. Calls go through the foreign tool's own async entry point (``ainvoke`` / ``acall``).

Why hand-written: neither library ships an AG2 adapter; the conversion is a signature and a call.
Both libraries are optional (``pip install 'ag2-agentops-cookbook[integrations]'``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, Field

from agentops import _identity  # noqa: F401
from agentops.errors import ConfigError

__all__ = ["from_langchain", "from_llamaindex", "langchain_function", "llamaindex_function"]


def _signature(model: type[BaseModel]) -> inspect.Signature:
    params = []
    for name, info in model.model_fields.items():
        annotation = info.annotation if info.annotation is not None else Any
        if info.description:
            annotation = Annotated[annotation, Field(description=info.description)]
        default = inspect.Parameter.empty if info.is_required() else info.get_default(call_default_factory=True)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation))
    return inspect.Signature(params)


def _function(name: str, description: str, model: Any, call: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ConfigError(
            f"tool {name!r} has no pydantic argument schema; give it an args model (args_schema/fn_schema)"
        )
    sig = _signature(model)
    names = tuple(sig.parameters)

    async def run(**kwargs: Any) -> Any:
        return await call({k: v for k, v in kwargs.items() if k in names})

    run.__name__ = run.__qualname__ = name
    run.__doc__ = description
    run.__signature__ = sig  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in sig.parameters.values()}
    return run


def langchain_function(tool: Any) -> Callable[..., Any]:
    """An async function with the LangChain tool's name, description and argument schema."""
    try:
        from langchain_core.tools import BaseTool
    except ImportError as exc:
        from agentops.errors import MissingDependencyError

        raise MissingDependencyError("LangChain tools need langchain-core: pip install langchain-core") from exc
    if not isinstance(tool, BaseTool):
        raise ConfigError(f"expected a LangChain BaseTool (e.g. from @tool), got {type(tool).__name__}")

    async def call(args: dict[str, Any]) -> Any:
        return await tool.ainvoke(args)

    return _function(tool.name, tool.description or "", tool.args_schema, call)


def llamaindex_function(tool: Any) -> Callable[..., Any]:
    """An async function with the LlamaIndex tool's name, description and argument schema."""
    meta = getattr(tool, "metadata", None)
    if meta is None or not hasattr(tool, "acall"):
        raise ConfigError(f"expected a LlamaIndex tool (FunctionTool, QueryEngineTool), got {type(tool).__name__}")

    async def call(args: dict[str, Any]) -> Any:
        out = await tool.acall(**args)
        raw = getattr(out, "raw_output", out)
        # plain values keep their type; rich objects (a query engine's Response) become their text
        return raw if isinstance(raw, (str, int, float, bool, list, dict, type(None))) else getattr(out, "content", raw)

    return _function(meta.get_name(), meta.description or "", meta.fn_schema, call)


def from_langchain(tool: Any, **options: Any) -> Any:
    """The LangChain tool as an ``ag2.tool`` (``options``: ``middleware=`` and other ``ag2.tool`` arguments)."""
    import ag2

    fn = langchain_function(tool)
    return ag2.tool(fn, name=fn.__name__, description=fn.__doc__, **options)


def from_llamaindex(tool: Any, **options: Any) -> Any:
    """The LlamaIndex tool as an ``ag2.tool``."""
    import ag2

    fn = llamaindex_function(tool)
    return ag2.tool(fn, name=fn.__name__, description=fn.__doc__, **options)
