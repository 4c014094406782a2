"""The secret catalogue (one file, validated at load) and the cross-source scorecard."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import pytest

from agentops.errors import ConfigError
from agentops.guardrails import SECRET_FORMATS, redact, scan, scorecard
from agentops.guardrails.catalogue import CATALOGUE_PATH, _unbounded, is_placeholder, load_secret_formats
from agentops.guardrails.evaluation import public_sources

# -- the catalogue ----------------------------------------------------------------------------------


def test_catalogue_loads_with_unique_ids_and_bounded_patterns() -> None:
    ids = [f.id for f in SECRET_FORMATS]
    assert len(ids) == len(set(ids)) >= 70
    assert not [f.id for f in SECRET_FORMATS if _unbounded(f.pattern)]
    gh = next(f for f in SECRET_FORMATS if f.id == "github-token")
    assert gh.prefixes == ("ghp_", "gho_", "ghu_", "ghs_", "ghr_") and gh.checksum == "github-crc32"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{id: x, provider: p, name: n, prefix: ab_, charset: nope, length: 8}", "charset must be one of"),
        ("{id: x, provider: p, name: n, prefix: ab_, charset: alnum, length: [9, 3]}", "length must be"),
        ("{id: x, provider: p, name: n, pattern: 'ab[0-9]+'}", "needs literals"),
        ("{id: x, provider: p, name: n, pattern: 'ab[0-9]+', literals: [ab]}", "bounded"),
        ("{id: x, provider: p, name: n, pattern: 'ab(', literals: [ab]}", "does not compile"),
        ("{id: x, provider: p, name: n, prefix: ab_, charset: alnum, length: 8, colour: red}", "unknown field"),
        ("{id: x, provider: p, name: n, prefix: ab_, charset: alnum, length: 8, checksum: md5}", "unknown checksum"),
        ("{id: x, provider: p, name: n}", "give either prefix"),
    ],
)
def test_bad_catalogue_entries_are_refused_with_the_fix(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(f"formats:\n  - {entry}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_secret_formats(path)


def test_duplicate_ids_and_missing_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    e = "{id: x, provider: p, name: n, prefix: ab_, charset: alnum, length: 8}"
    path.write_text(f"formats:\n  - {e}\n  - {e}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="repeats id"):
        load_secret_formats(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_secret_formats(tmp_path / "missing.yaml")
    assert load_secret_formats(CATALOGUE_PATH) is SECRET_FORMATS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("AKIAIOSFODNN7EXAMPLE", True),
        ("<your-api-key>", True),
        ("xxxxxxxxxxxxxxxx", True),
        ("changeme", True),
        ("${DB_PASSWORD}", True),
        ("hunter2!xQ", False),
    ],
)
def test_placeholders(value: str, expected: bool) -> None:
    assert is_placeholder(value) is expected


# Samples of every format telemetry's redaction names (agentops.telemetry._KNOWN_FORMATS): the one
# catalogue must cover them so telemetry can rely on it alone.
TELEMETRY_SAMPLES = {
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx7h3\n-----END RSA PRIVATE KEY-----",
    "jwt": "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl",
    "stripe_key": "sk_live_4eC39HqLyj",
    "openai_key": "sk-abcdefghijklmnop1234",
    "aws_access_key": "AKIAQ3EGRIUFQ7LNP5XZ",
    "github_token": "ghp_" + "aB3dE6hJ9kM2nP5qR8tU1wX4yZ7aB3",
    "github_pat": "github_pat_11ABCDEFG0aB3dE6hJ9kM2",
    "slack_token": "xoxb-1234567890-abcdefghij",
    "google_api_key": "AIza" + "SyD-aB3dE6hJ9kM2nP5qR8tU1wX4yZ7aB3d",
    "bearer_token": "Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0",
}


@pytest.mark.parametrize("name", sorted(TELEMETRY_SAMPLES))
def test_catalogue_covers_every_format_telemetry_knows(name: str) -> None:
    text = f"value: {TELEMETRY_SAMPLES[name]} end"
    assert [f.entity_type for f in scan(text)] == ["SECRET"]
    assert "[SECRET]" in redact(text)


def test_telemetry_known_formats_are_all_sampled() -> None:
    from agentops import telemetry

    names = {n for n, _ in getattr(telemetry, "_KNOWN_FORMATS", ())}
    assert names - {"email"} <= set(TELEMETRY_SAMPLES) | {"github_token"}


def test_github_checksum_raises_confidence() -> None:
    body = "aB3dE6hJ9kM2nP5qR8tU1wX4yZ7aB3"  # 30 random characters
    n = zlib.crc32(body.encode())
    digits = ""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    while n:
        n, r = divmod(n, 62)
        digits = alphabet[r] + digits
    good = f"ghp_{body}{digits.rjust(6, '0')}"
    bad = f"ghp_{body}000000"
    assert [round(f.score, 2) for f in scan(f"t {good} x")] == [0.99]
    assert [round(f.score, 2) for f in scan(f"t {bad} x")] == [0.95]


_R = "Qm7vT2xK9pL4wN8rB3zH6cJ1dF5gY0sA"  # 32 random-looking url-safe characters


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("glptt-" + _R + "_k3-Zp9w", True),  # 40 url-safe characters, not only hex
        ("glptt-" + _R + "_k3-Zp9wQab1", False),  # GitLab issues exactly 40
        ("GR1348941" + _R + "_tail_9Kq2", True),  # longer than 20
        ("glcbt-" + _R[:20], True),
        ("glcbt-eyJhbGciOiJSUzI1NiJ9." + _R, True),  # newer job tokens carry a JWT
        ("glagent-" + _R + "-" + _R[:26], True),  # 59 characters
        ("FlyV1 fm2_" + (_R * 4).replace("_", "+"), True),
        ("fm2_" + _R[:20], False),  # too short for a macaroon
        ("key-3ax6xnjp29jd6fds4gc373sgvjxteol0", True),  # Mailgun's documented key shape
        ("SG." + _R[:21] + "." + _R + _R[:11], True),  # 21 + 43
    ],
)
def test_provider_formats_take_the_bodies_providers_issue(value: str, found: bool) -> None:
    assert [f.entity_type for f in scan(f"cfg {value} end")] == (["SECRET"] if found else [])


# -- the scorecard ----------------------------------------------------------------------------------


def test_public_sources_name_repo_commit_licence_and_status() -> None:
    sources = public_sources()
    assert {s["status"] for s in sources} == {"held-out", "tuned"}
    for s in sources:
        assert re.fullmatch(r"[0-9a-f]{40}", s["commit"]) and s["licence"] and s["repo"].count("/") == 1


def test_scorecard_falls_back_to_the_recorded_numbers(tmp_path: Path) -> None:
    frame = scorecard(tmp_path)  # an empty directory: nothing to measure here
    assert set(frame["measured"]) == {"recorded"}
    assert {"held-out", "tuned"} <= set(frame["status"])
    micro = frame[(frame["entity"] == "micro") & (frame["scanner"] == "agentops")]
    assert set(micro["source"]) >= {"presidio_research_synth", "detect_secrets_tests"}


def test_scorecard_measures_records_that_are_present(tmp_path: Path) -> None:
    rows = [
        {"text": "mail ana@example.org", "entities": [{"type": "EMAIL_ADDRESS", "start": 5, "end": 20}]},
        {"text": "call 415-555-2671 now", "entities": []},
    ]
    (tmp_path / "presidio_research_synth.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    frame = scorecard(tmp_path, scanner="agentops")
    now = frame[frame["measured"] == "now"].set_index("entity")
    assert now.loc["EMAIL_ADDRESS", "f1"] == 1.0
    assert now.loc["PHONE_NUMBER", "precision"] == 0.0  # the phone was not labelled: a false positive
    assert set(now["source"]) == {"presidio_research_synth"}
    recorded = frame[frame["measured"] == "recorded"]  # the sources not rebuilt here come from the recording
    assert "presidio_research_synth" not in set(recorded["source"])
    assert {"detect_secrets_tests", "trufflehog_other"} <= set(recorded["source"])


def test_packaged_corpora_are_the_test_corpora() -> None:
    """build_corpus.py writes both copies; the chapter reads the packaged one, the tests this one."""
    tests_data = Path(__file__).parent / "data"
    packaged = Path(__file__).parent.parent / "agentops" / "guardrails" / "data"
    for name in ("pii_corpus.jsonl", "injection_corpus.jsonl"):
        assert (tests_data / name).read_bytes() == (packaged / name).read_bytes(), name
