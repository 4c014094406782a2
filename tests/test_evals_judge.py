"""Tests for agentops.evals.judge and the offline judge: parsing, voting, structured output and its fallback."""

from __future__ import annotations

import json

import pytest
from evals_support import respond, suite_of
from hypothesis import given, settings
from hypothesis import strategies as st

from agentops import evals as ev
from agentops.errors import ConfigError, RateLimitError, ServerError
from agentops.evals.cases import RUBRIC, EvalCase
from agentops.evals.judge import _RUBRIC_SCHEMA, JudgeResult, VerdictError, parse_verdict
from agentops.models import Faults, OfflineModel, rule
from agentops.usage import UnpricedModelWarning

# ------------------------------------------------------------------------------------------------
# Judge parsing
# ------------------------------------------------------------------------------------------------

FULL = {"correctness": 8, "helpfulness": 7, "clarity": 9, "safety": 10, "completeness": 6, "overall": 8}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(FULL),
        "Sure! Here is my evaluation:\n" + json.dumps(FULL) + "\nLet me know if you need more.",
        "```json\n" + json.dumps(FULL, indent=2) + "\n```",
        "Thoughts {not json} then " + json.dumps(FULL),
        str(FULL),  # Python-literal (single quotes)
        json.dumps({k: str(v) for k, v in FULL.items()}),
        json.dumps({"scores": FULL, "reasoning": "ok"}),
        json.dumps({k: {"score": v} for k, v in FULL.items()}),
    ],
)
def test_parse_verdict_tolerates_prose_fences_and_shapes(text):
    v = parse_verdict(text)
    assert v.scores == {k: float(x) for k, x in FULL.items()}


def test_parse_verdict_fractions_aliases_missing_fields_and_reasoning():
    v = parse_verdict('{"accuracy": "4/5", "Overall Score": 7.5, "rationale": "fine"}')
    assert v.correctness == 8.0 and v.overall == 7.5 and v.reasoning == "fine"
    assert v.missing() == ("helpfulness", "clarity", "safety", "completeness")
    assert v.passes({"overall": 7}) == (True, [])
    assert v.passes({"safety": 5}) == (False, ["safety missing < 5"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "empty answer"),
        ("   ", "empty answer"),
        ("I think it is good, 8/10.", "no JSON object"),
        ('{"quality": 8}', "none of the rubric keys"),
        ('{"overall": 85}', "outside the 0–10 scale"),
        ('{"overall": -1}', "outside the 0–10 scale"),
        ('{"overall": "great"}', "expected a number"),
        ('{"overall": true}', "boolean"),
        ('{"overall": [8]}', "expected a number"),
        ('{"overall": "3/0"}', "denominator"),
        ('{"overall": NaN}', "outside"),
        ('{"overall": 8', "cut off before its end .*raise max_tokens"),  # truncated
        ('{ "correctness": 8, "helpful', "cut off before its end"),  # a json_schema answer stopped at max_tokens
        ("Rating: 8} out of 10", "no JSON object"),
    ],
)
def test_parse_verdict_rejects_unreadable_verdicts(text, message):
    with pytest.raises(VerdictError, match=message):
        parse_verdict(text)


@settings(max_examples=60, deadline=None)
@given(
    scores=st.fixed_dictionaries({d: st.integers(0, 10) for d in RUBRIC}),
    before=st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=40),
    after=st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=40),
    fenced=st.booleans(),
)
def test_parse_verdict_recovers_any_valid_verdict_from_surrounding_prose(scores, before, after, fenced):
    body = json.dumps(scores)
    text = f"{before}\n```json\n{body}\n```\n{after}" if fenced else f"{before} {body} {after}"
    assert parse_verdict(text).scores == {k: float(v) for k, v in scores.items()}


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_parse_verdict_never_raises_anything_but_verdict_error(text):
    try:
        v = parse_verdict(text)
    except VerdictError:
        return
    assert any(s is not None for s in v.scores.values())
    assert all(s is None or 0 <= s <= 10 for s in v.scores.values())


# ------------------------------------------------------------------------------------------------
# The judge in a run
# ------------------------------------------------------------------------------------------------


def scripted_judge(answer: str, name: str = "scripted") -> OfflineModel:
    m = OfflineModel("offline-1")
    m.add_rule(rule(name, answer, system_contains="impartial evaluation judge"))
    return m


GRADED = {"id": "g", "prompt": "What is the capital of France?", "reference": "Paris", "graded": True}


async def test_malformed_judge_output_is_a_recorded_judge_error_not_a_crash_or_zero():
    s = suite_of(GRADED, judge={"thresholds": {"overall": 5}})
    judge = ev.Judge(ev.offline_judge(faults=Faults(malformed=1.0)))
    run = await ev.run_suite(s, respond("Paris is the capital."), judge=judge, progress=False)
    c = run["g"]
    assert c.status == "judge_error" and not c.passed
    assert c.judge.error and c.judge.scores["overall"] is None
    assert "judge: " in c.failures[-1]
    assert not [k for k in run.keys if k.startswith("judge.")]  # no fabricated 0 scores
    assert run.totals()["judge_errors"] == 1


async def test_judge_that_raises_or_misses_a_thresholded_dimension_is_recorded():
    class Boom(OfflineModel):
        def create(self):
            raise RuntimeError("provider down")

    s = suite_of(GRADED, judge={"thresholds": {"safety": 5}})
    run = await ev.run_suite(s, respond("Paris"), judge=ev.Judge(Boom()), progress=False)
    assert run["g"].status == "judge_error" and "provider down" in run["g"].judge.error
    run = await ev.run_suite(s, respond("Paris"), judge=ev.Judge(scripted_judge('{"overall": 9}')), progress=False)
    assert run["g"].status == "judge_error" and "lacks ['safety']" in run["g"].judge.error


async def test_offline_judge_grades_the_answer_not_a_constant():
    s = suite_of(GRADED, judge={"thresholds": {"overall": 6, "safety": 8}})
    judge = ev.Judge(ev.offline_judge())
    good = (await ev.run_suite(s, respond("Paris is the capital of France."), judge=judge, progress=False))["g"]
    wrong = (await ev.run_suite(s, respond("Berlin, I believe."), judge=judge, progress=False))["g"]
    leak = (await ev.run_suite(s, respond("Paris. Also SSN 123-45-6789."), judge=judge, progress=False))["g"]
    assert good.passed and good.judge.scores["correctness"] == 10.0
    assert not wrong.passed and wrong.judge.scores["correctness"] < 5
    assert not leak.passed and leak.judge.scores["safety"] == 1.0 and any("safety" in f for f in leak.judge.failed)
    assert good.judge.tokens > 0 and good.judge.cost_usd > 0


async def test_majority_vote_over_several_judges():
    s = suite_of(GRADED, judge={"thresholds": {"overall": 6}})
    hi = scripted_judge(json.dumps({**FULL, "overall": 9}))
    lo = scripted_judge(json.dumps({**FULL, "overall": 2}))
    bad = scripted_judge("no idea")
    two_pass = await ev.run_suite(s, respond("Paris"), judge=ev.Judge([hi, lo, hi]), progress=False)
    assert two_pass["g"].passed and two_pass["g"].judge.votes == (True, False, True)
    assert two_pass["g"].judge.scores["overall"] == 9.0  # median
    two_fail = await ev.run_suite(s, respond("Paris"), judge=ev.Judge([lo, hi, lo]), progress=False)
    assert not two_fail["g"].passed and two_fail["g"].judge.failed == ("overall 2.0 < 6",)
    tie = await ev.run_suite(s, respond("Paris"), judge=ev.Judge([hi, lo]), progress=False)
    assert not tie["g"].passed  # a tie is not a majority
    outvoted = await ev.run_suite(s, respond("Paris"), judge=ev.Judge([hi, bad, hi]), progress=False)
    assert outvoted["g"].passed and len(outvoted["g"].judge.errors) == 1 and outvoted["g"].judge.error is None


async def test_graded_suite_without_a_judge_is_an_error_before_running():
    calls = []

    async def target(prompt):
        calls.append(prompt)
        return "x"

    s = suite_of(GRADED, judge={"thresholds": {"overall": 6}})
    with pytest.raises(ev.EvalError, match=r"graded but no judge"):
        await ev.run_suite(s, target, progress=False)
    assert calls == []


def test_judge_constructor_validation():
    with pytest.raises(ConfigError):
        ev.Judge([])
    with pytest.raises(ev.UnknownKeyError, match="overal"):
        ev.Judge(ev.offline_judge(), thresholds={"overal": 3})
    assert "offline-1" in repr(ev.Judge(ev.offline_judge()))


async def test_judge_grade_directly_requires_thresholds():
    j = ev.Judge(scripted_judge(json.dumps(FULL)))
    c = EvalCase(id="x", prompt="p", graded=True)
    with pytest.raises(ev.EvalError, match="no judge threshold"):
        await j.grade(c, "answer")
    res = await ev.Judge(scripted_judge(json.dumps(FULL)), thresholds={"overall": 8}).grade(c, "answer")
    assert res.passed and res.to_dict()["scores"]["overall"] == 8.0


def test_judge_rule_is_visible_in_the_rules_frame():
    frame = ev.offline_judge().rules_frame()
    assert frame.iloc[0]["rule"] == "rubric judge"


# ------------------------------------------------------------------------------------------------
# Structured output, and the fallback for servers that refuse it
# ------------------------------------------------------------------------------------------------


def schema_aware_judge(refusal: Exception | None, model: str = "offline-1") -> tuple[OfflineModel, list[bool]]:
    """A judge model recording, per call, whether structured output was requested; it may refuse it."""
    asked: list[bool] = []
    schemas: list = []

    def answer(p):
        asked.append(p.schema is not None)
        schemas.append(p.schema)
        if p.schema is not None and refusal is not None:
            raise refusal
        return json.dumps({**FULL, "reasoning": "fine"})

    m = OfflineModel(model)
    m.add_rule(rule("judge", answer, system_contains="impartial evaluation judge"), first=True)
    m.schemas = schemas  # type: ignore[attr-defined]
    return m, asked


async def test_judge_requests_structured_output_with_the_rubric_schema():
    model, asked = schema_aware_judge(None)
    judge = ev.Judge(model, thresholds={"overall": 5})
    res = await judge.grade(EvalCase(id="x", prompt="p", graded=True), "answer")
    assert res.passed and asked == [True] and judge.structured_output == (True,)
    schema = model.schemas[-1]
    assert set(schema["required"]) == {*RUBRIC, "reasoning"}
    assert _RUBRIC_SCHEMA.name == "rubric_verdict" and _RUBRIC_SCHEMA.description.startswith("A rubric verdict")


@pytest.mark.parametrize(
    "refusal",
    [ServerError("HTTP 500: response_format json_schema is not supported"), ValueError("400 bad request")],
)
async def test_a_server_that_rejects_json_schema_is_asked_prompt_only_from_then_on(refusal):
    model, asked = schema_aware_judge(refusal)
    judge = ev.Judge(model, thresholds={"overall": 5})
    case = EvalCase(id="x", prompt="p", graded=True)
    first = await judge.grade(case, "answer")
    second = await judge.grade(case, "answer")
    assert first.passed and second.passed and first.error is None
    assert asked == [True, False, False]  # refused once, then prompt-only for the rest of the run
    assert judge.structured_output == (False,)


async def test_a_timeout_or_rate_limit_is_not_mistaken_for_a_schema_refusal():
    model, asked = schema_aware_judge(RateLimitError("slow down", retry_after=1))
    judge = ev.Judge(model, thresholds={"overall": 5})
    res = await judge.grade(EvalCase(id="x", prompt="p", graded=True), "answer")
    assert res.error and "RateLimitError" in res.error and asked == [True]
    assert judge.structured_output == (True,)


async def test_structured_false_asks_in_the_prompt_only():
    model, asked = schema_aware_judge(None)
    res = await ev.Judge(model, thresholds={"overall": 5}, structured=False).grade(
        EvalCase(id="x", prompt="p", graded=True), "answer"
    )
    assert res.passed and asked == [False]


async def test_an_unpriced_judge_model_counts_tokens_and_reports_cost_none():
    model, _ = schema_aware_judge(None, model="judge-without-a-price")
    with pytest.warns(UnpricedModelWarning):
        res = await ev.Judge(model, thresholds={"overall": 5}).grade(
            EvalCase(id="x", prompt="p", graded=True), "answer"
        )
    assert res.passed and res.tokens > 0 and res.cost_usd is None
    assert JudgeResult.from_dict(res.to_dict()) == res


# -- the same fallback against an OpenAI-compatible HTTP server (loopback) -----------------------------


class _NoSchemaServer:
    """A tiny OpenAI-compatible chat endpoint that answers HTTP 500 to ``response_format: json_schema``
    (as llama.cpp's server did) and a rubric verdict in prose otherwise; records every request body."""

    def __init__(self) -> None:
        import http.server
        import threading

        bodies = self.bodies = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                bodies.append(body)
                if "response_format" in body:
                    self._send(500, {"error": {"message": "json_schema is not supported", "type": "server_error"}})
                    return
                text = "Here is my grade:\n```json\n" + json.dumps({**FULL, "reasoning": "ok"}) + "\n```"
                self._send(
                    200,
                    {
                        "id": "c1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                        ],
                        "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
                    },
                )

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


async def test_judge_falls_back_against_a_real_openai_compatible_server(monkeypatch):
    monkeypatch.setenv("AGENTOPS_ALLOW_MODEL_REQUESTS", "1")  # a loopback stand-in server, not a provider
    pytest.importorskip("openai")
    from agentops.models import model_config

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    server = _NoSchemaServer()
    try:
        cfg = model_config("compatible", "gpt-4o-mini", base_url=server.url, max_retries=0, timeout=10)
        judge = ev.Judge(cfg, thresholds={"overall": 5})
        res = await judge.grade(EvalCase(id="x", prompt="p", graded=True), "answer")
    finally:
        server.close()
    assert res.passed and res.error is None and res.scores["overall"] == 8.0
    formats = [b.get("response_format", {}).get("type") for b in server.bodies]
    # one chain, kept by the HTTP layer: json_schema -> json_object -> the schema in the prompt
    assert formats == ["json_schema", "json_object", None]
    assert server.bodies[0]["response_format"]["json_schema"]["name"] == "rubric_verdict"
    assert "matches this JSON schema" in server.bodies[2]["messages"][0]["content"]
    assert judge.structured_output == (False,) and judge.structured_modes == ("prompt",)
    assert res.tokens == 70 and res.cost_usd > 0


async def test_the_judge_reads_the_http_layers_chain_and_keeps_no_second_one(monkeypatch):
    from agentops.compat import structured_fallback
    from agentops.models import model_config
    from agentops.testing import chat_completion, chat_server

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    verdict = chat_completion("Grade: " + json.dumps({**FULL, "reasoning": "ok"}), model="gpt-4o-mini", usage=(40, 20))
    server = chat_server([verdict, verdict], reject=["json_schema"])
    cfg = model_config("compatible", "gpt-4o-mini", base_url="http://fake.invalid/v1", transport=server)
    judge = ev.Judge(cfg, thresholds={"overall": 5})
    case = EvalCase(id="x", prompt="p", graded=True)
    first, second = await judge.grade(case, "answer"), await judge.grade(case, "answer")
    assert first.passed and second.passed and first.scores["overall"] == 8.0
    # json_object was accepted: the chain stopped there, and the second grade went straight to it
    assert [r.get("response_format", {}).get("type") for r in server.requests] == [
        "json_schema",
        "json_object",
        "json_object",
    ]
    assert judge.structured_modes == ("json_object",) and judge.structured_output == (True,)
    assert structured_fallback(cfg).notes == ["HTTP 500 on response_format json_schema: falling back to json_object"]


async def test_the_judge_grades_over_http_through_the_fault_server(fault_servers, allow_model_requests, monkeypatch):
    from agentops.models import model_config
    from agentops.resilience import HTTPFaults

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    server = fault_servers(ev.offline_judge(), faults=HTTPFaults())
    cfg = model_config("compatible", "offline-1", base_url=server.base_url, max_retries=0, timeout=10)
    judge = ev.Judge(cfg, thresholds={"overall": 5})
    case = EvalCase(id="x", prompt="What is the capital of France?", reference="Paris.", graded=True)
    res = await judge.grade(case, "Paris is the capital of France.")
    assert res.error is None and res.passed and res.scores["overall"] >= 5 and res.tokens > 0
    assert judge.structured_modes == ("json_schema",)
