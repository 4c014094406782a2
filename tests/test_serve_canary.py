"""Canary rollouts: sticky split within tolerance, versions with digests, promote/rollback decisions."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentops.errors import ConfigError
from agentops.serve.canary import CanaryRouter, Decision, Release, decide, slo_report
from agentops.slo import SLO

V1 = Release(version="v1", system_prompt="You are the support agent of ACME.", model="offline-1")
V2 = Release(version="v2", system_prompt="You are the support agent of ACME. Be warm.", model="offline-1")


def _router(share=0.2, salt="canary"):
    return CanaryRouter((V1, "agent-v1"), (V2, "agent-v2"), share=share, salt=salt)


def test_release_digest_tracks_content_not_label():
    assert V1.digest != V2.digest
    assert Release(version="other", system_prompt=V1.system_prompt, model="offline-1").digest == V1.digest
    with pytest.raises(ConfigError, match="version"):
        Release(version="v 1", system_prompt="x", model="m")


def test_split_ratio_within_tolerance():
    router = _router(share=0.2)
    served = [router.pick(f"conv-{i}")[0] for i in range(5000)]
    share = served.count("v2") / len(served)
    assert abs(share - 0.2) < 0.02  # 5000 draws: 3 standard deviations ≈ 0.017
    assert router.served == {"v1": served.count("v1"), "v2": served.count("v2")}


@given(st.text(min_size=1, max_size=40), st.floats(0, 1))
def test_split_is_sticky_per_conversation(conv, share):
    a, b = _router(share), _router(share)
    assert a.route(conv) == a.route(conv) == b.route(conv)  # same id → same version, across replicas


def test_growing_share_keeps_canary_conversations():
    router = _router(0.1)
    before = {c for c in map(str, range(2000)) if router.route(c) is V2}
    router.set_share(0.5)
    after = {c for c in map(str, range(2000)) if router.route(c) is V2}
    assert before <= after and len(after) > len(before)


def test_pick_returns_the_release_agent_and_apply_moves_everyone():
    router = _router(0.5)
    picks = {router.pick(str(i)) for i in range(50)}
    assert picks == {("v1", "agent-v1"), ("v2", "agent-v2")}
    router.apply(Decision("promote", ()))
    assert {router.pick(str(i)) for i in range(50)} == {("v2", "agent-v2")}
    router = _router(0.5)
    router.apply(Decision("rollback", ()))
    assert {router.route(str(i)).version for i in range(50)} == {"v1"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"share": 1.5}, "share"), ({"share": True}, "share")],
)
def test_router_rejects_bad_input(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        CanaryRouter((V1, "a"), (V2, "b"), **kwargs)


def test_router_rejects_same_version_and_empty_ids():
    with pytest.raises(ConfigError, match="share the version"):
        CanaryRouter((V1, "a"), (V1, "b"))
    with pytest.raises(ConfigError, match="conversation_id"):
        _router().route("")


SLO_OK = SLO(name="availability", kind="availability", target=0.95)


def test_slo_report_from_counts():
    r = slo_report(SLO_OK, events=100, bad=2)
    assert (r.sli, r.met, round(r.burn_rate, 6), round(r.budget_remaining, 6)) == (0.98, True, 0.4, 0.6)
    assert slo_report(SLO_OK, events=0, bad=0).met is None
    with pytest.raises(ConfigError, match="bad"):
        slo_report(SLO_OK, events=3, bad=4)


def test_decide_promote_hold_rollback():
    passed = SimpleNamespace(passed=True, reasons=())
    failed = SimpleNamespace(passed=False, reasons=("pass rate 0.75 < 1.00",))
    good = slo_report(SLO_OK, events=40, bad=1)
    assert decide(passed, [good]).action == "promote"
    assert decide(passed, [slo_report(SLO_OK, events=5, bad=0)]).action == "hold"
    missed = decide(passed, [slo_report(SLO_OK, events=40, bad=8)])
    assert missed.action == "rollback" and "SLO availability missed" in missed.reasons[0]
    gated = decide(failed, [good])
    assert gated == Decision("rollback", ("eval gate failed: pass rate 0.75 < 1.00",))
