from __future__ import annotations

import logging

from agentops.listeners import KINDS, notify


def test_notify_calls_every_listener_with_a_copy_and_survives_failures(caplog):
    seen = []

    def good(kind, payload):
        seen.append((kind, payload))
        payload["mutated"] = True  # must not leak into the next listener

    def bad(kind, payload):
        raise RuntimeError("observer bug")

    payload = {"agent": "support", "tool": "delete"}
    with caplog.at_level(logging.WARNING, logger="agentops.listeners"):
        failed = notify([good, bad, good], "tool.denied", payload)
    assert failed == 1
    assert seen == [("tool.denied", {"agent": "support", "tool": "delete", "mutated": True})] * 2
    assert payload == {"agent": "support", "tool": "delete"}
    assert "observer bug" in caplog.text and "tool.denied" in caplog.text


def test_kinds_are_unique_and_dotted_names():
    assert len(set(KINDS)) == len(KINDS)
    assert all(k == k.lower() and " " not in k for k in KINDS)


def test_every_kind_documents_its_payload_keys():
    from agentops.listeners import PAYLOAD_KEYS

    assert set(PAYLOAD_KEYS) == set(KINDS)
    assert all(keys and len(set(keys)) == len(keys) for keys in PAYLOAD_KEYS.values())
