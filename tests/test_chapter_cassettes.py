"""The committed cassettes of real-model sessions replay offline (no server, requests forbidden)."""

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from agentops.cassettes import load_interactions
from agentops.models import model_config

ROOT = Path(__file__).resolve().parents[1]
CASSETTES = ROOT / "notebooks" / "cassettes"
LOCAL_MODEL = "smollm2-135m-instruct"


@pytest.mark.parametrize("chapter", ["00_quickstart", "01_architecture"])
def test_chapter_replays_end_to_end_with_real_model_text(chapter, tmp_path, monkeypatch):
    import papermill

    tape = CASSETTES / f"{chapter}.yaml"
    monkeypatch.setenv("AGENTOPS_CASSETTE", str(tape))
    monkeypatch.setenv("AGENTOPS_ALLOW_MODEL_REQUESTS", "0")
    out = tmp_path / f"{chapter}.ipynb"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / f"{chapter}.ipynb"),
        str(out),
        parameters={"llm_backend": "replay", "model": LOCAL_MODEL},
        cwd=str(ROOT / "notebooks"),
        progress_bar=False,
        kernel_name="python3",
    )
    printed = "".join(
        "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
        for c in json.loads(out.read_text())["cells"]
        for o in c.get("outputs", [])
    )
    assert "CassetteMiss" not in printed  # every request the chapter made was recorded
    recorded = [i["response"]["choices"][0]["message"]["content"] or "" for i in load_interactions(tape)]
    assert any(text[:30] in printed for text in recorded if len(text) >= 30)  # real model text, replayed


@pytest.mark.parametrize("chapter", ["00_quickstart", "01_architecture"])
async def test_every_recorded_request_replays_through_the_openai_client(chapter, monkeypatch):
    from openai import AsyncOpenAI

    monkeypatch.setenv("AGENTOPS_ALLOW_MODEL_REQUESTS", "0")
    tape = CASSETTES / f"{chapter}.yaml"
    cfg = model_config("replay", cassette=tape)
    client = AsyncOpenAI(base_url=cfg.base_url, api_key="replay", http_client=cfg.http_client, max_retries=0)
    interactions = load_interactions(tape)
    for recorded in interactions:
        completion = await client.chat.completions.create(**recorded["request"])
        assert completion.choices[0].message.content == recorded["response"]["choices"][0]["message"]["content"]
        assert completion.model == LOCAL_MODEL
    assert os.environ["AGENTOPS_ALLOW_MODEL_REQUESTS"] == "0"


# The key set in OPENAI_API_KEY while the committed cassettes were recorded (`make record-cassettes`
# sets it); neither it nor any other secret, e-mail address or auth header may reach a committed file.
RECORDING_CANARY = "sk-proj-CANARY0123456789abcdefXYZ"
_AUTH_HEADERS = {"authorization", "api-key", "x-api-key", "proxy-authorization", "cookie", "set-cookie"}


def _auth_headers(path):
    """Credential-carrying headers recorded in a cassette's requests or responses (should be none)."""
    data = yaml.safe_load(path.read_text())
    found = set()
    for interaction in data["interactions"]:
        for side in ("request", "response"):
            found |= {name.lower() for name in (interaction[side].get("headers") or {})} & _AUTH_HEADERS
    return found


@pytest.mark.parametrize("chapter", ["00_quickstart", "01_architecture"])
def test_no_key_or_personal_data_reaches_a_committed_cassette(chapter):
    from agentops.guardrails import scan

    text = (CASSETTES / f"{chapter}.yaml").read_text()
    assert RECORDING_CANARY not in text and "CANARY" not in text
    assert not _auth_headers(CASSETTES / f"{chapter}.yaml")
    assert not re.search(r"(?i)bearer\s+(sk-|[A-Za-z0-9_\-.]{20,})", text)  # no token after "Bearer" (model text
    # may mention the word: SmolLM2 writes `AuthorizationHeader: 'Bearer: YOUR_ACCESS_TOKEN'` in example code)
    found = {f.entity_type for f in scan(text) if f.entity_type in {"SECRET", "EMAIL_ADDRESS", "CREDIT_CARD"}}
    assert not found, found
    assert load_interactions(CASSETTES / f"{chapter}.yaml")  # the file is a real, non-empty cassette
