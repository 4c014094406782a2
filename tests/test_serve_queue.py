"""The admission queue: bounded, priorities with aging, Redis-shared — in memory, over HTTP, across processes."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentops.errors import ConfigError
from agentops.serve.queue import AdmissionQueue, MemoryQueueStore, QueueFull, RedisQueueStore

AGING = {"high": 0, "normal": 4, "low": 16}
RANK = {"high": 0, "normal": 1, "low": 2}


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        yield MemoryQueueStore()
        return
    client = request.getfixturevalue("redis_client")
    redis_store = RedisQueueStore(client, namespace=f"test-queue-{uuid.uuid4().hex}")
    yield redis_store
    redis_store.clear()


def _enqueue(store, priority, max_waiting=100):
    return store.enqueue(AGING[priority], RANK[priority], max_waiting)


def _admission_order(store, tickets):
    """Admit with one slot until every ticket ran; returns the labels in admission order."""
    order, waiting = [], dict(tickets)
    while waiting:
        admitted = [label for label, t in waiting.items() if store.admit(t, 1)]
        assert len(admitted) == 1, admitted
        order.append(admitted[0])
        store.release(waiting.pop(admitted[0]))
    return order


def test_priority_first_then_arrival_order(store):
    tickets = {name: _enqueue(store, name.rstrip("0123456789")) for name in ("low1", "normal1", "high1", "high2")}
    assert _admission_order(store, list(tickets.items())) == ["high1", "high2", "normal1", "low1"]


def test_aging_lets_at_most_the_configured_arrivals_pass_a_low_ticket(store):
    tickets = [("low", _enqueue(store, "low"))] + [(f"high{i}", _enqueue(store, "high")) for i in range(20)]
    order = _admission_order(store, tickets)
    assert order.index("low") == AGING["low"]  # passed by 16 later arrivals, then admitted


def test_capacity_and_waiting_line_are_bounded(store):
    first, second = _enqueue(store, "normal", 2), _enqueue(store, "normal", 2)
    assert _enqueue(store, "high", 2) is None  # the line is full, whatever the priority
    assert store.admit(first, 1) is True and store.admit(second, 1) is False
    assert store.counts() == (1, 1)
    store.cancel(second)
    assert store.counts() == (1, 0) and store.admit(second, 1) is None  # gone
    store.release(first)
    assert store.counts() == (0, 0)


def test_redis_leases_reclaim_slots_and_drop_silent_waiters(redis_client):
    store = RedisQueueStore(redis_client, namespace=f"test-queue-{uuid.uuid4().hex}", lease_s=0.05, waiter_lease_s=0.05)
    try:
        crashed = _enqueue(store, "normal")
        assert store.admit(crashed, 1) is True  # its replica dies without releasing
        silent = _enqueue(store, "normal")  # its client stops polling
        time.sleep(0.1)
        waiting = _enqueue(store, "normal")
        assert store.admit(silent, 1) is None
        assert store.admit(waiting, 1) is True and store.counts() == (1, 0)
    finally:
        store.clear()


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["enqueue", "admit", "release"]), st.sampled_from(list(AGING)))))
def test_running_and_waiting_never_exceed_their_bounds(ops):
    store, capacity, max_waiting = MemoryQueueStore(), 2, 3
    waiting, running = [], []
    for op, priority in ops:
        if op == "enqueue":
            ticket = _enqueue(store, priority, max_waiting)
            if ticket is not None:
                waiting.append(ticket)
        elif op == "admit":
            for ticket in list(waiting):
                if store.admit(ticket, capacity):
                    waiting.remove(ticket)
                    running.append(ticket)
        elif running:
            store.release(running.pop(0))
        assert store.counts() == (len(running), len(waiting))
        assert len(running) <= capacity and len(waiting) <= max_waiting


def test_slot_refuses_a_full_line_and_a_long_wait():
    async def scenario():
        queue = AdmissionQueue(capacity=1, max_waiting=1, max_wait_s=0.05)
        async with queue.slot("high"):
            with pytest.raises(QueueFull, match="not admitted within") as late:
                async with queue.slot("low"):
                    pass
            waiter = asyncio.ensure_future(queue.slot("normal").__aenter__())
            await asyncio.sleep(0.01)
            with pytest.raises(QueueFull, match="waiting line is full") as full:
                async with queue.slot("high"):
                    pass
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
        return late.value, full.value, queue.store.counts()

    late, full, counts = asyncio.run(scenario())
    assert late.retry_after_s >= 1 and full.retry_after_s >= 1
    assert counts == (0, 0)  # the cancelled waiter left the line, the slot was released


def test_bad_queue_settings_are_config_errors():
    with pytest.raises(ConfigError, match="capacity"):
        AdmissionQueue(capacity=0)
    with pytest.raises(ConfigError, match="aging"):
        AdmissionQueue(aging={"high": -1})
    with pytest.raises(ConfigError, match="unknown priority 'urgent'"):
        AdmissionQueue().check_priority("urgent")


# -- over HTTP -----------------------------------------------------------------------------------------

httpx = pytest.importorskip("httpx")
KEY = "queue-secret-key-0001"


def _wait(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def _post(url, results, name):
    r = httpx.post(url + "/v1/ask", json={"prompt": "refund?"}, headers={"X-API-Key": KEY}, timeout=60)
    results[name] = r


def _in_background(url, results, name):
    thread = threading.Thread(target=_post, args=(url, results, name))
    thread.start()
    return thread


class _Gate:
    """A middleware whose model calls wait for an event (event ordering instead of sleeps)."""

    @staticmethod
    def factory(event):
        from ag2.middleware import BaseMiddleware

        class Gated(BaseMiddleware):
            async def on_llm_call(self, call_next, events, context):
                await asyncio.to_thread(event.wait, 30)
                return await call_next(events, context)

        return Gated


def _burst(urls, counts, then=lambda: None):
    """Three requests against capacity 1 + a line of 1: one runs, one waits, one is refused at once."""
    results = {}
    first = _in_background(urls[0], results, "first")
    _wait(lambda: counts() == (1, 0))
    second = _in_background(urls[1], results, "second")
    _wait(lambda: counts() == (1, 1))
    _post(urls[0], results, "third")
    then()
    first.join(60)
    second.join(60)
    return results


def test_a_burst_over_http_runs_waits_and_refuses_with_retry_after():
    pytest.importorskip("a2a")
    from agentops.scenarios.deployment import support_agent
    from agentops.serve import KeyStore, ServiceThread, build_app

    queue, gate = AdmissionQueue(capacity=1, max_waiting=1), threading.Event()
    agent = support_agent()
    agent._middleware.insert(0, _Gate.factory(gate))  # model calls wait until the test opens the gate

    def make(url):
        return build_app(agent, keys=KeyStore({"ops": KEY}), url=url, queue=queue)

    with ServiceThread(make) as running:
        results = _burst([running.url, running.url], queue.store.counts, then=gate.set)
        metrics = httpx.get(running.url + "/metrics").text
    assert results["first"].status_code == 200 and results["second"].status_code == 200
    third = results["third"]
    assert third.status_code == 503 and third.json()["error"] == "overloaded"
    assert int(third.headers["retry-after"]) >= 1
    assert 'agentops_serve_refusals_total{reason="overloaded",route="/v1/ask"} 1.0' in metrics


def test_two_processes_share_one_queue_through_redis(redis_client, redis_url):
    pytest.importorskip("a2a")
    from agentops.serve.testing import ServiceProcess

    namespace = f"test-queue-{uuid.uuid4().hex}"
    env = {"AGENTOPS_API_KEYS": f"ops={KEY}", "AGENTOPS_SERVE_LATENCY_S": "4.0", "AGENTOPS_SERVE_QUEUE": namespace}
    args = ["--queue-capacity", "1", "--queue-waiting", "1"]
    shared = RedisQueueStore(redis_client, namespace=namespace)
    replicas = ServiceProcess.replicas(2, redis_url=redis_url, rate="", env=env, args=args)
    try:
        results = _burst([replicas[0].url, replicas[1].url], shared.counts)
    finally:
        for r in replicas:
            r.stop()
        shared.clear()
    # the request waiting on replica B held replica A's third request out: one capacity, one line
    assert results["first"].status_code == 200 and results["second"].status_code == 200
    assert results["third"].status_code == 503 and results["third"].json()["error"] == "overloaded"
