"""The agent service over real HTTP on loopback: REST, A2A, keys, limits, health, metrics, drain."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

pytest.importorskip("a2a")
httpx = pytest.importorskip("httpx")

from agentops.errors import ConfigError  # noqa: E402
from agentops.scenarios.deployment import support_agent  # noqa: E402
from agentops.serve import KeyStore, RateLimit, ServiceThread, bind, build_app  # noqa: E402

ALICE, BOB = "alice-secret-key-0001", "bob-secret-key-00002"
KEYS = {"alice": ALICE, "bob": BOB}


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- keys and limits ---------------------------------------------------------------------------------


def test_keystore_identifies_by_name_and_never_shows_keys():
    store = KeyStore(KEYS)
    assert store.identify(ALICE) == "alice"
    assert store.identify(BOB) == "bob"
    assert store.identify("alice-secret-key-0002") is None
    assert store.identify("") is None and store.identify(None) is None
    assert ALICE not in repr(store) and repr(store) == "KeyStore(names=['alice', 'bob'])"


@pytest.mark.parametrize(
    ("keys", "match"),
    [
        ({}, "no API keys"),
        ({"a": "short"}, "too short"),
        ({"a b": "x" * 10}, "letters"),
        ({"a": "k" * 9, "b": "k" * 9}, "reuses"),
    ],
)
def test_keystore_rejects_bad_keys(keys, match):
    with pytest.raises(ConfigError, match=match):
        KeyStore(keys)


def test_keystore_from_env_and_file(monkeypatch, tmp_path):
    monkeypatch.setenv("AGENTOPS_API_KEYS", f"alice={ALICE}, bob={BOB}")
    assert KeyStore.from_env().names == ["alice", "bob"]
    path = tmp_path / "keys"
    path.write_text(f"# clients\nalice={ALICE}\n")
    assert KeyStore.from_file(path).identify(ALICE) == "alice"
    path.write_text(f"alice {ALICE}\n")
    with pytest.raises(ConfigError, match="not name=key") as info:
        KeyStore.from_file(path)
    assert ALICE not in str(info.value)
    with pytest.raises(ConfigError, match="does not exist"):
        KeyStore.from_file(tmp_path / "missing")
    monkeypatch.delenv("AGENTOPS_API_KEYS")
    with pytest.raises(ConfigError, match="AGENTOPS_API_KEYS"):
        KeyStore.from_env()


def test_rate_limit_counts_per_key_in_memory():
    limit = RateLimit("2/minute")
    assert [limit.hit("alice").allowed for _ in range(3)] == [True, True, False]
    assert limit.hit("bob").allowed and limit.hit("bob").remaining == 0
    with pytest.raises(ConfigError, match="not a rate"):
        RateLimit("often")
    with pytest.raises(ConfigError, match="not a rate"):
        RateLimit("1/minute", per_key={"ops": "lots"})


def test_rate_limit_per_key_override_on_redis(redis_client, redis_url):
    limit = RateLimit("1/minute", storage_url=redis_url, per_key={"ops": "3/minute"})
    assert [limit.hit("ops").allowed for _ in range(4)] == [True, True, True, False]
    assert [limit.hit("alice").allowed for _ in range(2)] == [True, False]
    other = RateLimit("1/minute", storage_url=redis_url)  # a second replica sees the same window
    assert not other.hit("alice").allowed


def test_bind_is_loopback_unless_public():
    with pytest.raises(ConfigError, match="not loopback"):
        bind("0.0.0.0", 0)
    sock = bind("127.0.0.1", 0)
    sock.listen()
    try:
        with pytest.raises(ConfigError, match="cannot listen"):
            bind("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()


# -- one running service -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service():
    def make(url):
        return build_app(
            support_agent(), keys=KeyStore(KEYS), url=url, rate_limit=RateLimit("1000/minute"), max_body_bytes=2048
        )

    with ServiceThread(make) as running:
        yield running


def _ask(service, prompt="refund please", key=ALICE, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(service.url + "/v1/ask", json={"prompt": prompt, **kw}, headers=headers, timeout=10)


def test_rest_ask_with_valid_key(service):
    r = _ask(service, conversation_id="c-1")
    assert r.status_code == 200
    assert r.json() == {"answer": "Refunds are paid within 5 business days.", "version": "v1", "conversation_id": "c-1"}
    r = httpx.post(service.url + "/v1/ask", json={"prompt": "hours?"}, headers={"X-API-Key": BOB}, timeout=10)
    assert r.json()["answer"].startswith("We are open")


def test_rest_refuses_missing_and_invalid_keys(service):
    r = _ask(service, key=None)
    assert r.status_code == 401 and r.json()["error"] == "missing_api_key"
    assert r.headers["www-authenticate"] == "Bearer"
    r = _ask(service, key="not-a-real-key-123")
    assert r.status_code == 403 and r.json() == {"error": "invalid_api_key", "detail": "the API key is not recognised"}


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 422, "invalid_json"),
        (b"[1, 2]", 422, "invalid_request"),
        (b'{"prompt": ""}', 422, "invalid_request"),
        (b'{"prompt": "hi", "admin": true}', 422, "invalid_request"),
        (b'{"prompt": "' + b"x" * 3000 + b'"}', 413, "body_too_large"),
    ],
)
def test_rest_validates_requests(service, body, status, error):
    r = httpx.post(service.url + "/v1/ask", content=body, headers={"X-API-Key": ALICE}, timeout=10)
    assert (r.status_code, r.json()["error"]) == (status, error)


def test_health_readiness_and_metrics(service):
    assert httpx.get(service.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(service.url + "/readyz").json() == {"status": "ready", "detail": "ok", "health": "healthy"}
    _ask(service, key=None)
    text = httpx.get(service.url + "/metrics").text
    assert 'agentops_serve_refusals_total{reason="missing_key",route="/v1/ask"}' in text
    assert "agentops_serve_request_seconds_bucket" in text


def test_a2a_round_trip_with_ag2_client(service):
    import ag2
    from ag2.a2a import A2AConfig

    card = httpx.get(service.url + "/a2a/.well-known/agent-card.json").json()
    assert card["skills"][0]["tags"] == ["agentops"] and card["name"] == "support"
    remote = ag2.Agent("remote", config=A2AConfig(card_url=service.url + "/a2a", headers={"X-API-Key": BOB}))
    reply = asyncio.run(remote.ask("what are your hours?"))
    assert reply.body == "We are open 9:00-17:00 CET, Monday to Friday."


def test_a2a_rpc_needs_a_key(service):
    r = httpx.post(service.url + "/a2a/", json={"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {}})
    assert r.status_code == 401 and r.json()["error"] == "missing_api_key"


def test_keys_never_reach_logs_or_bodies(service, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    logging.getLogger().setLevel(logging.DEBUG)
    wrong = "canary-wrong-key-9f8e7d"
    bodies = [_ask(service).text, _ask(service, key=wrong).text, httpx.get(service.url + "/metrics").text]
    out, err = capfd.readouterr()
    for secret in (ALICE, wrong):
        assert secret not in caplog.text and secret not in out + err
        assert all(secret not in b for b in bodies)


# -- limits and drain ----------------------------------------------------------------------------------


def test_rate_limit_refuses_with_retry_after():
    def make(url):
        return build_app(support_agent(), keys=KeyStore(KEYS), url=url, rate_limit=RateLimit("2/minute"))

    with ServiceThread(make) as running:
        statuses = [_ask(running).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        r = _ask(running)
        assert r.json()["error"] == "rate_limited" and 0 < int(r.headers["retry-after"]) <= 61
        assert _ask(running, key=BOB).status_code == 200  # other keys have their own window


def _slow_service(grace_s, ledger=None):
    def make(url):
        return build_app(support_agent(latency_s=1.5, ledger=ledger), keys=KeyStore(KEYS), url=url)

    return ServiceThread(make, grace_s=grace_s)


def _ask_in_background(running):
    result = {}
    thread = threading.Thread(target=lambda: result.update(r=_ask(running)))
    thread.start()
    _wait(lambda: running.service.inflight)
    return thread, result


def test_shutdown_cancels_late_requests_with_a_clear_status_and_releases_budgets():
    from agentops.budgets import InProcessLedger

    ledger = InProcessLedger()
    running = _slow_service(grace_s=0.05, ledger=ledger).start()
    thread, result = _ask_in_background(running)
    running.stop()
    thread.join(10)
    r = result["r"]
    assert r.status_code == 503 and r.json()["error"] == "cancelled"
    assert running.drained == {"finished": 0, "cancelled": 1}
    accounts = ledger.accounts()
    assert accounts and all(a["reserved_tokens"] == 0 for a in accounts), accounts


def test_shutdown_lets_requests_within_grace_finish():
    running = _slow_service(grace_s=5.0).start()
    thread, result = _ask_in_background(running)
    running.stop()
    thread.join(10)
    assert result["r"].status_code == 200
    assert running.drained == {"finished": 1, "cancelled": 0}
