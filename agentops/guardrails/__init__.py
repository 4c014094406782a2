"""Content guardrails: PII, secret, prompt-injection and toxicity detection, redaction, AG2 middleware.

Detection (:func:`scan`) reports Presidio's entity names — ``EMAIL_ADDRESS``, ``PHONE_NUMBER``,
``CREDIT_CARD``, ``US_SSN``, ``IP_ADDRESS``, ``IBAN_CODE``, ``URL`` — plus ``SECRET`` for API keys,
tokens, passwords and private keys, each as a :class:`Finding` with end-exclusive character offsets.
Secrets come from one catalogue of provider token formats kept as data (``data/secrets.yaml``,
:data:`SECRET_FORMATS`; telemetry's redaction uses the same one) plus context rules. Text is folded
before scanning (fullwidth digits, zero-width characters, Unicode spaces, URL-encoding) with offsets
mapped back, and every detector runs in time linear in the text.

Why hand-written rather than Presidio: Presidio's pattern recognizers take milliseconds per message,
too slow to sit on every model call, and have no secret detection; ``benchmarks/guardrails.py``
measures both on the same public labelled data (:func:`scorecard`). Users who prefer Presidio plug it
in through :class:`PresidioScanner` without changing any other code.

Prompt injection (:func:`detect_injection`) normalises the text (compatibility forms, confusables,
zero-width characters, spaced-out letters, base64 payloads) and scores instruction overrides,
persona hijacks, fake system/chat-template markers and exfiltration requests; a learned classifier,
when installed as ``agentops.guardrails.classifier``, is combined with the rules. Toxicity goes
through the :class:`ToxicityDetector` protocol (:class:`LexiconToxicity` by default).

Redaction comes in two forms. :func:`redact` replaces each finding with a typed placeholder
(``[EMAIL_ADDRESS]``) — what logs and traces use. A :class:`Vault` does *redact-then-restore* for one
conversation: the model sees stable numbered placeholders (``[EMAIL_ADDRESS_1]``), and a tool
receives a real value only where it declared that argument for that type (:func:`restore_into`,
``GuardrailPolicy.restore``; default: nothing) and only if the user supplied the value — an address
planted in a fetched page is refused with ``DENIED: ...``.

:class:`GuardrailMiddleware` attaches all of it to an ``ag2.Agent`` in AG2's middleware shape: inputs
(text and structured parts) in ``on_turn``, model output (streamed output too, before observers see
it) and tool-call arguments in ``on_llm_call``, tool results in ``on_tool_execution``. Every finding
is recorded as (agent, where, entity type, action) — never the raw value.

Example::

    guard = GuardrailMiddleware("support", GuardrailPolicy(restore={"send_email": {"to": ["EMAIL_ADDRESS"]}}))
    agent = ag2.Agent("support", "Be helpful.", config=cfg, tools=[send_email], middleware=[guard])
    reply = await agent.ask("My card is 4111 1111 1111 1111")   # the model sees [CREDIT_CARD_1]
    guard.findings_frame()

Thread and asyncio safety: detection functions are pure; a :class:`Vault` and the middleware's record
list are guarded by locks, so one middleware factory may serve concurrent conversations.
"""

from __future__ import annotations

from agentops import _identity  # noqa: F401  (fails fast if another `agentops` shadows this one)
from agentops.guardrails._types import ENTITY_TYPES, Finding, Verdict
from agentops.guardrails.catalogue import SECRET_FORMATS, SecretFormat, load_secret_formats
from agentops.guardrails.evaluation import injection_scorecard, scorecard
from agentops.guardrails.injection import detect_injection, normalize
from agentops.guardrails.middleware import GuardrailMiddleware
from agentops.guardrails.policy import Action, GuardrailPolicy, GuardrailRecord
from agentops.guardrails.redaction import VAULT_KEY, Vault, redact, restore_into, restore_placeholders
from agentops.guardrails.scanners import Scanner, scan
from agentops.guardrails.scoring import PresidioScanner, score_scanner
from agentops.guardrails.toxicity import CallableToxicity, LexiconToxicity, ToxicityDetector
from agentops.listeners import Listener

# The names a user needs. Also importable from here for code written against the single-module
# version: Action, Listener, Scanner, SecretFormat, ToxicityDetector, VAULT_KEY, load_secret_formats,
# normalize.
__all__ = [
    "ENTITY_TYPES",
    "SECRET_FORMATS",
    "CallableToxicity",
    "Finding",
    "GuardrailMiddleware",
    "GuardrailPolicy",
    "GuardrailRecord",
    "LexiconToxicity",
    "PresidioScanner",
    "Vault",
    "Verdict",
    "detect_injection",
    "injection_scorecard",
    "redact",
    "restore_into",
    "restore_placeholders",
    "scan",
    "score_scanner",
    "scorecard",
]

_COMPAT = (Action, Listener, Scanner, SecretFormat, ToxicityDetector, VAULT_KEY, load_secret_formats, normalize)
