"""Shared fixtures. The session refuses real network access (pytest-socket, loopback only; see
pyproject addopts), so no test can silently call a model provider."""

from __future__ import annotations

import os

import pytest

# nbval kernels inherit this process's environment; MPLBACKEND=Agg would make plt.show() display nothing.
os.environ.pop("MPLBACKEND", None)
# Real model requests are refused in tests and in the kernels nbval starts (agentops.testing sets the same);
# the real-model smoke test opts in with the `allow_model_requests` fixture.
os.environ.setdefault("AGENTOPS_ALLOW_MODEL_REQUESTS", "0")

REDIS_URL = os.environ.get("AGENTOPS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the real redis-server started by `make services`; fails loudly when it is absent."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"redis-server is not reachable at {REDIS_URL} ({exc}); start it with `make services`")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture()
def redis_client(redis_url: str):
    """A client on the test database, flushed before and after each test."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture()
def simulated_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use with ``@pytest.mark.looptime``: the event loop's clock is simulated, so sleeps, latencies and
    timeouts take no wall time and land exactly (``loop.time()`` starts at 0).

    AG2 runs some synchronous hooks in anyio worker threads, which a simulated loop cannot see (it would
    jump to its next timer while a thread is still working); here they run inline instead.
    """
    import anyio.to_thread

    async def run_inline(func, *args, **_):  # type: ignore[no-untyped-def]
        return func(*args)

    monkeypatch.setattr(anyio.to_thread, "run_sync", run_inline)
