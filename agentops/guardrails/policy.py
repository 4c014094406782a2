"""The guardrail's configuration (:class:`GuardrailPolicy`) and what it records (:class:`GuardrailRecord`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from agentops.config import Spec
from agentops.guardrails._types import ENTITY_TYPES
from agentops.guardrails.toxicity import LexiconToxicity

__all__ = ["Action", "GuardrailPolicy", "GuardrailRecord"]

Action = Literal["redact", "block", "flag", "allow"]

# Argument names that carry a URL: URL findings are kept in them (a fetch_page(url) tool needs the URL).
URL_ARGUMENT_WORDS = ("url", "uri", "link", "href", "endpoint", "website", "webpage", "page")


class GuardrailPolicy(Spec):
    """What the guardrail does with each kind of finding, per agent.

    Attributes:
        actions: entity type (or ``"INJECTION"``, ``"TOXICITY"``) → ``redact``, ``block``, ``flag``
            (record only) or ``allow``; ``"*"`` is the default for entity types not listed.
        restore: tool → argument → entity types that argument may receive back from the vault
            (default: nothing for any tool). Only values the user supplied are ever restored.
        url_arguments: tool → extra argument names that carry a URL (beyond names such as ``url``,
            ``link`` or ``endpoint``, which always do); URLs are not redacted in those arguments.
        injection_threshold: flag user input at this injection score.
        tool_result_injection_threshold: flag tool results (indirect injection) at this score; stricter
            than for input by default (0.7, see :mod:`agentops.guardrails.classifier`).
        conversation_window: also score the last N user messages joined, so an instruction split
            across two turns is seen whole.
        max_scan_chars: text longer than this is cut: the rest is withheld and replaced by a note,
            never passed on unscanned.
        offload_chars: text longer than this is scanned in a worker thread, so the event loop keeps
            serving other conversations.
        redact_stream: redact streamed output before stream observers see it (buffered per message).

    Example:
        >>> p = GuardrailPolicy(restore={"send_email": {"to": ["EMAIL_ADDRESS"]}})
        >>> p.action_for("EMAIL_ADDRESS"), dict(p.restore["send_email"])
        ('redact', {'to': ('EMAIL_ADDRESS',)})
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    actions: Mapping[str, str] = Field(
        default_factory=lambda: {"*": "redact", "INJECTION": "block", "TOXICITY": "flag"}
    )
    restore: Mapping[str, Mapping[str, tuple[str, ...]]] = Field(default_factory=dict)
    url_arguments: Mapping[str, tuple[str, ...]] = Field(default_factory=dict)
    scan_input: bool = True
    scan_output: bool = True
    scan_tools: bool = True
    injection_threshold: float = Field(0.5, gt=0, le=1)
    tool_result_injection_threshold: float = Field(0.7, gt=0, le=1)  # classifier.TOOL_RESULT_THRESHOLD
    check_tool_results_for_injection: bool = True
    conversation_window: int = Field(2, ge=1, le=20)
    max_scan_chars: int = Field(1_000_000, ge=1_000)
    offload_chars: int = Field(32_768, ge=0)
    redact_stream: bool = True
    toxicity: Any = Field(default_factory=LexiconToxicity, description="a ToxicityDetector")
    scanner: Any = Field(default=None, description="a Scanner; None means agentops.guardrails.scan")
    refusal: str = "I can't process that message: it was blocked by a safety policy ({reason})."

    @field_validator("actions")
    @classmethod
    def _known(cls, v: Mapping[str, str]) -> Mapping[str, str]:
        allowed_keys = {*ENTITY_TYPES, "INJECTION", "TOXICITY", "*"}
        bad = set(v) - allowed_keys
        if bad:
            raise ValueError(f"unknown policy key(s) {sorted(bad)}; use {sorted(allowed_keys)}")
        bad_actions = {a for a in v.values() if a not in ("redact", "block", "flag", "allow")}
        if bad_actions:
            raise ValueError(f"unknown action(s) {sorted(bad_actions)}; use redact, block, flag or allow")
        merged = {"*": "redact", "INJECTION": "block", "TOXICITY": "flag", **v}
        if merged["INJECTION"] == "redact" or merged["TOXICITY"] == "redact":
            raise ValueError("INJECTION and TOXICITY can be block, flag or allow (there is no span to redact)")
        return merged

    @field_validator("restore", mode="before")
    @classmethod
    def _restore_types(cls, v: Any) -> Any:
        if not isinstance(v, Mapping):
            raise ValueError("restore maps tool name -> {argument: [entity types]}")
        out: dict[str, dict[str, tuple[str, ...]]] = {}
        for tool, args in v.items():
            if not isinstance(args, Mapping):
                raise ValueError(
                    f"restore[{tool!r}] must map argument names to entity types, e.g. {{'to': ['EMAIL_ADDRESS']}}"
                )
            out[tool] = {}
            for arg, types in args.items():
                types = (types,) if isinstance(types, str) else tuple(types)
                unknown = set(types) - set(ENTITY_TYPES)
                if unknown:
                    raise ValueError(f"restore[{tool!r}][{arg!r}]: unknown entity type(s) {sorted(unknown)}")
                out[tool][arg] = types
        return out

    @field_validator("url_arguments", mode="before")
    @classmethod
    def _url_args(cls, v: Any) -> Any:
        if not isinstance(v, Mapping):
            raise ValueError("url_arguments maps tool name -> [argument names]")
        return {tool: (args,) if isinstance(args, str) else tuple(args) for tool, args in v.items()}

    @field_validator("toxicity")
    @classmethod
    def _toxicity_callable(cls, v: Any) -> Any:
        if v is not None and not callable(v):
            raise ValueError("toxicity must be a ToxicityDetector (a callable text -> Verdict) or None")
        return v

    def action_for(self, kind: str) -> str:
        """The configured action for an entity type, ``INJECTION`` or ``TOXICITY``."""
        return self.actions.get(kind, self.actions.get("*", "redact"))

    def is_url_argument(self, tool: str | None, argument: str) -> bool:
        """True when ``argument`` of ``tool`` carries a URL (by its name or by ``url_arguments``)."""
        low = argument.lower()
        if tool is not None and argument in self.url_arguments.get(tool, ()):
            return True
        return any(low == w or low.endswith(("_" + w, "-" + w)) or low.startswith(w + "_") for w in URL_ARGUMENT_WORDS)


@dataclass(frozen=True)
class GuardrailRecord:
    """One thing the guardrail saw: never the raw value, only its type, place and what was done."""

    agent: str
    where: str
    entity_type: str
    action: str
    score: float
    turn: int
    tool: str | None = None
    detail: str = ""


def names(values: Sequence[str]) -> str:
    """``a, b`` (deduplicated, order kept) for refusal messages."""
    return ", ".join(dict.fromkeys(values))
