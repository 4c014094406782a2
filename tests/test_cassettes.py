"""Record → replay round trips through a fake server; redaction; misses; the committed chapter cassettes."""

import json
import re
from pathlib import Path

import ag2
import pytest
import yaml

from agentops.cassettes import CassetteMiss, canonical_body, forget_cassette, load_interactions, open_cassette
from agentops.models import model_config
from agentops.testing import chat_completion, chat_server

URL = "http://fake.invalid/v1"
CANARY = "sk-proj-CANARY0123456789abcdefXYZ"
CASSETTES = Path(__file__).resolve().parents[1] / "notebooks" / "cassettes"


def _record(path, replies):
    """A config that records to ``path`` while a fake server answers ``replies``."""
    return model_config("compatible", "fake-1", base_url=URL, transport=chat_server(replies), cassette=path)


async def test_record_then_replay_offline_gives_the_same_text_and_usage(tmp_path, monkeypatch):
    tape = tmp_path / "t.yaml"
    cfg = _record(tape, [chat_completion("Hello from the server", usage=(12, 4)), chat_completion("Second")])
    first = await ag2.Agent("a", "Be brief.", config=cfg).ask("hi")
    second = await first.ask("more")
    monkeypatch.setenv("AGENTOPS_ALLOW_MODEL_REQUESTS", "0")
    replay = model_config("replay", cassette=tape)
    assert replay.model == "fake-1" and replay.provider == "compatible"
    r1 = await ag2.Agent("a", "Be brief.", config=replay).ask("hi")
    r2 = await r1.ask("more")
    assert (r1.body, r2.body) == (first.body, second.body) == ("Hello from the server", "Second")
    assert (await r2.usage()).total.total_tokens == (await second.usage()).total.total_tokens
    assert replay.http_client._transport._inner.all_played


async def test_a_canary_key_never_reaches_the_cassette(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    tape = tmp_path / "t.yaml"
    cfg = _record(tape, [chat_completion(f"your key is {CANARY}")])
    reply = await ag2.Agent("a", f"The admin key is {CANARY}.", config=cfg).ask(f"echo {CANARY}")
    assert CANARY in reply.body  # the live session is untouched
    text = tape.read_text()
    assert CANARY not in text and "CANARY" not in text and "[SECRET]" in text
    assert "authorization" not in text.lower()
    replayed = await ag2.Agent("a", f"The admin key is {CANARY}.", config=model_config("replay", cassette=tape)).ask(
        f"echo {CANARY}"
    )
    assert replayed.body == "your key is [SECRET]"  # matched through the same redaction


async def test_a_replay_miss_names_the_request_and_the_fix(tmp_path):
    tape = tmp_path / "t.yaml"
    await ag2.Agent("a", config=_record(tape, [chat_completion("x")])).ask("recorded question")
    replay = model_config("replay", cassette=tape)
    with pytest.raises(CassetteMiss) as info:
        await ag2.Agent("a", config=replay).ask("a different question")
    message = str(info.value)
    assert "has no response for POST /v1/chat/completions with 2 messages, last user: 'a different question'" in message
    assert "closest recorded request (2 messages, last user: 'recorded question')" in message
    assert "re-record the cassette" in message


async def test_forget_cassette_replays_from_the_first_exchange_again(tmp_path):
    tape = tmp_path / "t.yaml"
    cfg = _record(tape, [chat_completion("first"), chat_completion("second")])
    await ag2.Agent("a", config=cfg).ask("same question")
    await ag2.Agent("a", config=cfg).ask("same question")
    player = open_cassette(tape, "replay")
    assert open_cassette(tape, "replay") is player  # one player per process: a session replays in order
    bodies = [
        (await ag2.Agent("a", config=model_config("replay", cassette=tape)).ask("same question")).body for _ in "ab"
    ]
    assert bodies == ["first", "second"]
    forget_cassette(tape)
    assert open_cassette(tape, "replay") is not player
    again = await ag2.Agent("a", config=model_config("replay", cassette=tape)).ask("same question")
    assert again.body == "first"


def test_canonical_body_ignores_volatile_fields_and_ids():
    a = {"model": "x", "user": "u1", "messages": [{"role": "tool", "tool_call_id": "call_abc", "content": "ok"}]}
    b = {"model": "y", "user": "u2", "messages": [{"role": "tool", "tool_call_id": "call_zzz", "content": "ok"}]}
    assert canonical_body(json.dumps(a)) == canonical_body(json.dumps(b).encode())
    c = {**a, "max_tokens": 5}
    assert canonical_body(json.dumps(a)) != canonical_body(json.dumps(c))


@pytest.mark.parametrize("chapter", ["00_quickstart", "01_architecture"])
def test_committed_chapter_cassettes_hold_real_model_text_and_no_secret(chapter):
    path = CASSETTES / f"{chapter}.yaml"
    if not path.exists():
        pytest.fail(f"{path} is missing; record it with `make record-cassettes`")
    interactions = load_interactions(path)
    assert interactions and all(i["status"] == 200 for i in interactions)
    texts = [i["response"]["choices"][0]["message"].get("content") or "" for i in interactions]
    assert any(len(t) > 20 for t in texts)
    assert {i["response"]["model"] for i in interactions} == {"smollm2-135m-instruct"}
    assert all(i["request"].get("max_tokens") for i in interactions)
    raw = path.read_text()
    assert not re.search(r"sk-[A-Za-z0-9_\-]{16,}", raw)  # no OpenAI-style key, the recording canary included
    for interaction in yaml.safe_load(raw)["interactions"]:  # and no credential header on either side
        for side in ("request", "response"):
            assert not {h.lower() for h in interaction[side].get("headers") or {}} & {"authorization", "api-key"}
