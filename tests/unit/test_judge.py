"""The LLM judge's pure parts (mipro/judge.py): the strict score parser, what the judge is shown, how its
score and the task app's reward make a rollout's score, its config (and the reference's spellings), and its
cost category. The judge on real servers: tests/integration/test_judge.py."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mipro.budget import Spend
from mipro.config import DEFAULT_RUBRIC, JudgeConfig, PolicyConfig, Price
from mipro.interceptor.registry import CallRecord, Upstream
from mipro.job_models import JobState
from mipro.judge import (
    answer_text,
    combine,
    judge_messages,
    judged_turn,
    needs_judge,
    parse_score,
    reported_usage,
    scores_without_reward,
    upper_estimate,
)
from mipro.rollout_protocol import failed_status, parse_reward
from mipro.types import ChatMessage, SeedOutcome, Usage
from mipro.workflows.job import Job

TOOL_ANSWER = ChatMessage(
    role="assistant",
    content=None,
    tool_calls=[
        {"id": "c1", "type": "function", "function": {"name": "classify", "arguments": '{"intent": "x"}'}}
    ],
)


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("0", 0.0),
        ("1", 1.0),
        ("0.75", 0.75),
        (" .5\n", 0.5),
        ("1.0", 1.0),
        ("+0.25", 0.25),
        ('{"score": 0.4}', 0.4),
    ],
)
def test_a_score_is_a_bare_number_or_a_json_score_in_0_1(text: str, score: float) -> None:
    assert parse_score(text) == score
    assert parse_score('{"score": 1, "reason": "exact label"}') == 1.0


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "Score: 0.9",
        "0.9.",
        "0.8 because it is right",
        "1.5",
        "-0.1",
        "nan",
        "inf",
        "1e-1",
        '{"score": "0.5"}',
        '{"score": true}',
        '{"grade": 0.5}',
        "[0.5]",
        "{not json",
        '{"score": 2}',
    ],
)
def test_anything_else_is_unparseable_never_a_score(text: str | None) -> None:
    with pytest.raises(ValueError):
        parse_score(text)


def test_the_judge_is_shown_the_rubric_the_final_user_turn_and_the_answer() -> None:
    assert answer_text(TOOL_ANSWER) == 'classify({"intent": "x"})'
    assert answer_text(ChatMessage(role="assistant", content=" Intent: x ")) == "Intent: x"
    first = CallRecord(
        stage_id="a",
        request_messages=[ChatMessage(role="user", content="route this")],
        sent_messages=[],
        answer=ChatMessage(role="assistant", content="billing"),
        usage=Usage(),
        latency_ms=1,
    )
    last = first.model_copy(
        update={
            "request_messages": [
                ChatMessage(role="system", content="Classify."),
                ChatMessage(role="user", content="an earlier turn"),
                ChatMessage(role="assistant", content="ok"),
                ChatMessage(role="user", content="Customer Query: where is my card?"),
            ],
            "answer": TOOL_ANSWER,
        }
    )
    failed = first.model_copy(update={"answer": None, "error": "upstream failed"})
    assert judged_turn([first, last, failed]) == (
        "Customer Query: where is my card?",
        'classify({"intent": "x"})',
    )
    assert judged_turn([failed]) is None
    system, user = judge_messages("Grade banking intents.", "Customer Query: q", "classify(...)")
    assert system["content"].startswith("Grade banking intents.") and "score only" in system["content"]
    assert user["content"] == "Task input:\nCustomer Query: q\n\nAnswer to score:\nclassify(...)"


def test_the_modes_make_the_score_from_the_judge_and_the_reward() -> None:
    assert not needs_judge("fallback", 1.0) and needs_judge("fallback", None)
    assert needs_judge("blend", 1.0) and needs_judge("judge", 0.0)
    assert combine("fallback", 0.5, None, 0.75) == 0.75
    assert combine("fallback", 0.5, 0.0, 0.75) == 0.0
    assert combine("blend", 0.25, 1.0, 0.5) == pytest.approx(0.25 * 0.5 + 0.75 * 1.0)
    assert combine("judge", 0.25, 1.0, 0.5) == 0.5
    with pytest.raises(ValueError):
        combine("blend", 0.5, None, 0.5)
    assert scores_without_reward(JudgeConfig(model="j")) and not scores_without_reward(None)
    assert not scores_without_reward(JudgeConfig(model="j", mode="blend"))


def test_a_rollout_the_app_says_failed_has_no_reward_and_is_not_judged() -> None:
    assert failed_status({"success_status": "error", "metrics": {"outcome_score": 1.0}}) == "error"
    assert parse_reward({"success_status": "error", "metrics": {"outcome_score": 1.0}}) is None
    assert failed_status({"success_status": "success"}) is None and failed_status({}) is None


def test_the_judges_calls_are_bounded_and_priced_like_the_policys() -> None:
    upstream = Upstream(
        base_url="http://j/v1", model="j", price=Price(input_per_mtok=1.0, output_per_mtok=2.0)
    )
    body = {"messages": judge_messages("r", "input " * 100, "answer"), "max_tokens": 64}
    bound = upper_estimate(upstream, body)
    assert bound.prompt_tokens > 600 and bound.completion_tokens == 64 and bound.calls == 1
    usage = reported_usage(upstream, {"usage": {"prompt_tokens": 150, "completion_tokens": 2}}, bound)
    assert usage == Usage(calls=1, prompt_tokens=150, completion_tokens=2, cost_usd=(150 + 4) / 1e6)
    assert reported_usage(upstream, {"usage": {"prompt_tokens": -1}}, bound) == bound, "unreadable: the bound"


def test_the_judges_upstream_defaults_to_the_policys() -> None:
    policy = PolicyConfig(model="p", provider="openai", inference_url="http://llm/v1", api_key_env="LLM_KEY")
    judge = JudgeConfig(model="j").resolved(policy)
    assert (judge.inference_url, judge.api_key_env, judge.provider) == ("http://llm/v1", "LLM_KEY", "openai")
    assert judge.rubric == DEFAULT_RUBRIC and judge.mode == "fallback" and judge.max_tokens == 64
    groq = JudgeConfig(model="openai/gpt-oss-20b", provider="GROQ").resolved(policy)
    assert (groq.inference_url, groq.api_key_env) == ("https://api.groq.com/openai/v1", "GROQ_API_KEY")
    own = JudgeConfig(model="j", inference_url="http://judge/v1").resolved(policy)
    assert (own.inference_url, own.api_key_env) == ("http://judge/v1", None), "its own URL: no policy key"


def test_the_judge_config_reads_the_references_spellings_and_refuses_its_service() -> None:
    read = JudgeConfig.model_validate(
        {"backend_model": "j", "reward_source": "judge", "backend_api_key_env": "K"}
    )
    assert (read.model, read.mode, read.api_key_env) == ("j", "judge", "K")
    for bad in (
        {"model": "j", "backend_base": "http://x/api"},
        {"model": "j", "reward_source": "task_app"},
        {"model": "j", "reward_source": "fused", "mode": "fallback"},
        {"model": "j", "backend_model": "k"},
        {"model": "j", "weight": 1.5},
        {"model": "j", "mode": "average"},
        {"model": "j", "rubric": ""},
        {"model": "j", "typo": 1},
    ):
        with pytest.raises(ValidationError):
            JudgeConfig.model_validate(bad)


def test_the_judge_is_its_own_cost_category_inside_the_total() -> None:
    spend = Spend()
    spend.add("rollout", Usage(calls=2, prompt_tokens=100, cost_usd=0.01))
    spend.add("proposal", Usage(calls=1, prompt_tokens=10, cost_usd=0.001))
    spend.add("judge", Usage(calls=2, prompt_tokens=50, completion_tokens=4, cost_usd=0.02))
    assert spend.total == Usage(calls=5, prompt_tokens=160, completion_tokens=4, cost_usd=0.031)
    assert "judge" in spend.model_dump() and spend.model_dump()["total"]["cost_usd"] == pytest.approx(0.031)
    assert Spend.model_validate({"rollout": {}, "proposal": {}}).judge == Usage(), "older states: no judge"


def test_the_workflow_books_a_rollouts_judge_usage_as_judge_spend() -> None:
    judge = Usage(calls=1, prompt_tokens=40, completion_tokens=2, cost_usd=0.004)
    policy = Usage(calls=1, prompt_tokens=300, completion_tokens=5, cost_usd=0.001)
    outcomes = [
        SeedOutcome(seed=1, score=1.0, usage=policy.plus(judge), judge_usage=judge, judge_score=1.0),
        SeedOutcome(seed=2, error="judge_unparseable", usage=policy.plus(judge), judge_usage=judge),
        SeedOutcome(seed=3, score=0.0, usage=policy),
    ]
    assert outcomes[0].policy_usage == policy
    job = Job.__new__(Job)  # account() reads only the state unless a rollout hit the budget
    job.s = JobState()
    job.account(outcomes)
    assert job.s.spend.judge == Usage(calls=2, prompt_tokens=80, completion_tokens=4, cost_usd=0.008)
    assert job.s.spend.rollout.calls == 3 and job.s.spend.rollout.cost_usd == pytest.approx(0.003)
    assert job.s.counters.errors_by_kind == {"judge_unparseable": 1} and job.s.counters.rollout_errors == 1
