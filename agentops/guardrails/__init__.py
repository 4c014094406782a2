"""Content guardrails: PII, secret, prompt-injection and toxicity detection, redaction, AG2 middleware.

Detection (:func:`scan`) reports Presidio's entity names — ``EMAIL_ADDRESS``, ``PHONE_NUMBER``,
``CREDIT_CARD``, ``US_SSN``, ``IP_ADDRESS``, ``IBAN_CODE``, ``URL`` — plus ``SECRET`` for API keys,
tokens, passwords and private keys, each as a :class:`Finding` with end-exclusive character offsets.

Why hand-written rather than Presidio: Presidio's pattern recognizers run one regex per recognizer over
the text, each followed by context scoring and an NLP pass; that is milliseconds per message, too slow
to sit on every model call, and it has no secret detection. Here every entity has one compiled pattern
that runs only when a cheap prefilter (``"@" in text``, a digit, ``"://"``) says it can match, and the
real work — Luhn, IBAN mod-97 with country lengths, SSN area/group/serial rules, IPv4 octet ranges and
IPv6 parsing, phone plausibility, secret entropy — runs only on candidates. ``benchmarks/guardrails.py``
measures it against Presidio in the same run. Users who prefer Presidio can plug it in through
:class:`PresidioScanner` without changing any other code.

Prompt injection (:func:`detect_injection`) normalises the text first (Unicode compatibility forms,
confusable letters, zero-width characters, spaced-out letters, simple base64 payloads) and then looks
for instruction overrides, persona hijacks, fake system/chat-template markers and exfiltration
requests; text that merely *talks about* system prompts or contains ``"role": "system"`` in code is not
flagged. Toxicity goes through the :class:`ToxicityDetector` protocol; :class:`LexiconToxicity` (word
boundaries, phrases for threats) is the default and a model-based detector plugs in unchanged.

Redaction comes in two forms. :func:`redact` replaces each finding with a typed placeholder
(``[EMAIL_ADDRESS]``) — the plain function logs and traces use. A :class:`Vault` does
*redact-then-restore* for one conversation: the model sees stable numbered placeholders
(``[EMAIL_ADDRESS_1]``), a tool marked as trusted receives the real value (:func:`restore_placeholders`),
and history, logs and traces keep only placeholders.

:class:`GuardrailMiddleware` attaches all of it to an ``ag2.Agent`` in AG2's middleware shape (a factory
configured once, a :class:`~ag2.middleware.BaseMiddleware` per turn): inputs are redacted or blocked in
``on_turn`` (so the stream history never stores the raw value), model output and tool-call arguments
are scanned in ``on_llm_call``, tool results in ``on_tool_execution``. Every finding is recorded as
(agent, where, entity type, action) — never the raw value.

Example::

    guard = GuardrailMiddleware(agent="support", policy=GuardrailPolicy(actions={"SECRET": "block"}))
    agent = ag2.Agent("support", "Be helpful.", config=cfg, middleware=[guard])
    reply = await agent.ask("My card is 4111 1111 1111 1111")   # the model sees [CREDIT_CARD_1]
    guard.findings_frame()

Thread and asyncio safety: detection functions are pure; a :class:`Vault` and the middleware's record
list are guarded by locks, so one middleware factory may serve concurrent conversations.
"""

from __future__ import annotations

from agentops import _identity  # noqa: F401  (fails fast if another `agentops` shadows this one)
from agentops.guardrails._types import ENTITY_TYPES, Finding, Verdict
from agentops.guardrails.catalogue import SECRET_FORMATS, SecretFormat, load_secret_formats
from agentops.guardrails.injection import detect_injection, normalize
from agentops.guardrails.middleware import Action, GuardrailMiddleware, GuardrailPolicy, GuardrailRecord
from agentops.guardrails.redaction import VAULT_KEY, Vault, redact, restore_placeholders
from agentops.guardrails.scanners import Scanner, scan
from agentops.guardrails.scoring import PresidioScanner, score_scanner
from agentops.guardrails.toxicity import CallableToxicity, LexiconToxicity, ToxicityDetector
from agentops.listeners import Listener

__all__ = [
    "ENTITY_TYPES",
    "SECRET_FORMATS",
    "VAULT_KEY",
    "Action",
    "CallableToxicity",
    "Finding",
    "GuardrailMiddleware",
    "GuardrailPolicy",
    "GuardrailRecord",
    "LexiconToxicity",
    "Listener",
    "PresidioScanner",
    "Scanner",
    "SecretFormat",
    "ToxicityDetector",
    "Vault",
    "Verdict",
    "detect_injection",
    "load_secret_formats",
    "normalize",
    "redact",
    "restore_placeholders",
    "scan",
    "score_scanner",
]
