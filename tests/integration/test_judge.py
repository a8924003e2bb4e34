"""The LLM judge (mipro/judge.py), on real servers on 127.0.0.1: the banking77 task app (behind a proxy that
strips its reward, for the rollouts that must be judged), the simulated LLM as policy and meta-model, the
worker's interceptor, and a small FastAPI judge that answers scores deterministically.

- A task app that sends no reward: the judge's scores drive the search. Its judge grades as the app would
  (the gold label of the query), so every decision equals the reward-scored reference job's; the judge's
  spend is its own cost category, measured at the judge server, and counts under max_spend_usd.
- blend: weight * judge + (1 - weight) * reward, per rollout.
- an unparseable judge answer is a `judge_unparseable` error, never a score.
- the judge's calls count against the evaluation's allowance; a failing judge LLM is retried.

Each fails with the judge switched off: without it the rewardless rollouts are `no_reward` errors (the job
fails), and a rollout with a reward is scored by the reward alone.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from mipro.activities.resources import WorkerResources
from mipro.activities.task_app import TaskAppActivities
from mipro.activity_models import EvaluateInput, RolloutTarget
from mipro.config import JobConfig, JudgeConfig, Price
from mipro.interceptor.app import create_app as create_interceptor
from mipro.interceptor.registry import Registry
from mipro.job_models import OptimizationResult
from mipro.rollout_protocol import parse_reward
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.taskapps.answers import score as grade
from mipro.taskapps.banking77.data import Banking77Data
from mipro.types import CompiledCandidate, StagePrompt
from mipro.worker import WorkerOptions, running_worker
from tests.conftest import SMALL_JOB, TASK_APP_KEY, job_config

JUDGE_MODEL = "judge-sim"
JUDGE_PRICE = {"input_per_mtok": 2.0, "output_per_mtok": 4.0}  # dearer than the policy: its spend shows
AUTH_HEADERS = ("x-api-key", "x-api-keys", "authorization")
QUERY = re.compile(r"Customer Query: (.*?)\n\nAvailable Intents", re.S)
TOOL_CALL = re.compile(r"banking77_classify\((.*)\)", re.S)


def rewardless(task_app_url: str) -> FastAPI:
    """A task app speaking the rollout contract that sends no reward: the banking77 app's rollouts with
    `metrics` and the steps' rewards removed (its /health and /task_info passed through)."""
    state: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(base_url=task_app_url, timeout=60) as client:
            state["client"] = client
            yield

    app = FastAPI(lifespan=lifespan)
    app.state.rollouts = 0

    def auth(request: Request) -> dict[str, str]:
        return {k: v for k, v in request.headers.items() if k.lower() in AUTH_HEADERS}

    @app.get("/health")
    @app.get("/task_info")
    async def passthrough(request: Request) -> Any:
        response = await state["client"].get(request.url.path, headers=auth(request))
        return JSONResponse(response.json(), status_code=response.status_code)

    @app.post("/rollout")
    async def rollout(request: Request) -> Any:
        app.state.rollouts += 1
        response = await state["client"].post("/rollout", json=await request.json(), headers=auth(request))
        body = response.json()
        if response.status_code == 200:
            body.pop("metrics", None)
            for trajectory in body.get("trajectories", []):
                trajectory.get("final", {}).pop("reward", None)
                for step in trajectory.get("steps", []):
                    step.pop("reward", None)
            assert parse_reward(body) is None
        return JSONResponse(body, status_code=response.status_code)

    return app


class Judge:
    """An OpenAI-compatible judge. `verdict(query, intent)` answers for the query of the task input and the
    intent of the answer's tool call; it reports `len(prompt) // 4` prompt tokens and 2 completion tokens.
    The first `fail_first` calls get a 503."""

    def __init__(self, verdict: Callable[[str, str | None], str], fail_first: int = 0) -> None:
        self.verdict, self.fail_first = verdict, fail_first
        self.requests = 0
        self.answered: list[tuple[str, str | None, str]] = []  # (query, intent, verdict)
        self.prompt_tokens = self.completion_tokens = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(body: dict[str, Any]) -> Any:
            self.requests += 1
            if self.requests <= self.fail_first:
                return JSONResponse({"error": {"message": "judge overloaded"}}, status_code=503)
            system, user = body["messages"]
            assert body["model"] == JUDGE_MODEL and "score only" in system["content"]
            task_input, answer = user["content"].removeprefix("Task input:\n").split("\n\nAnswer to score:\n")
            query = QUERY.search(task_input)
            call = TOOL_CALL.search(answer)
            intent = json.loads(call.group(1)).get("intent") if call else None
            verdict = self.verdict(query.group(1) if query else "", intent)
            self.answered.append((query.group(1) if query else "", intent, verdict))
            prompt = (len(system["content"]) + len(user["content"])) // 4
            self.prompt_tokens += prompt
            self.completion_tokens += 2
            return {
                "id": f"judge-{self.requests}",
                "object": "chat.completion",
                "model": JUDGE_MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": verdict},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": prompt, "completion_tokens": 2, "total_tokens": prompt + 2},
            }

        return app

    def cost_usd(self) -> float:
        return (self.prompt_tokens * JUDGE_PRICE["input_per_mtok"] + self.completion_tokens * 4.0) / 1e6


def grading(data: Banking77Data) -> Callable[[str, str | None], str]:
    """Grades as the banking77 app rewards: 1 for the query's gold label, else 0."""
    gold = {row.text: row.label for row in data.train}
    return lambda query, intent: f"{grade(intent, gold[query]):.1f}"


def query_score(query: str, intent: str | None) -> str:
    """A score of the query alone, one of 0, 0.25, ..., 1: for checking a blend seed by seed."""
    return str((len(query) % 5) / 4)


def judged(config: JobConfig, judge_url: str, **judge: Any) -> JobConfig:
    body = config.model_dump(mode="json")
    body["judge"] = {"model": JUDGE_MODEL, "inference_url": f"{judge_url}/v1", **judge}
    body["pricing"][JUDGE_MODEL] = JUDGE_PRICE
    return JobConfig.model_validate(body)


def decisions(result: OptimizationResult) -> dict[str, Any]:
    return {
        "best": result.best.model_dump(),
        "test": (result.baseline_test_score, result.best_test_score),
        "trials": [(t.choice.key, t.seeds, t.minibatch_score, t.paired_lift, t.n) for t in result.trials],
        "validations": [(v.key, v.score, v.incumbent) for v in result.validations],
    }


async def run(env: WorkflowEnvironment, config: JobConfig, task_queue: str) -> OptimizationResult:
    async with running_worker(env.client, WorkerOptions(task_queue=task_queue)):
        handle = await jobs.start_job(env.client, config, task_queue=task_queue)
        return await handle.result()


async def test_a_judge_scores_rollouts_without_a_reward_and_its_scores_drive_the_search(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    task_app: BackgroundServer,
    banking77_data: Banking77Data,
    task_queue: str,
    reference_result: OptimizationResult,
) -> None:
    judge = Judge(grading(banking77_data))
    proxy = rewardless(task_app.url)
    with BackgroundServer(proxy) as app, BackgroundServer(judge.app()) as judge_server:
        # The judge is dear: a budget it does not bind, so that every decision can be the reference's.
        plain = job_config(app.url, simllm.url, [*SMALL_JOB, "termination.max_spend_usd=10.0"])
        unjudged = await run(temporal_env, plain, task_queue)  # without a judge: no_reward errors only
        proxy.state.rollouts = 0
        result = await run(temporal_env, judged(plain, judge_server.url), task_queue)

    assert unjudged.status == "stopped_on_errors" and unjudged.best_validation_score is None
    assert set(unjudged.errors_by_kind) == {"no_reward"}
    assert result.status == "succeeded" and result.rollout_errors == 0
    assert decisions(result) == decisions(reference_result), "the judge's scores made every decision"
    assert judge.requests == proxy.state.rollouts == result.total_rollouts, "every rollout judged once"
    costs = result.costs
    ref = reference_result.costs.rollout
    same = (costs.rollout.calls, costs.rollout.prompt_tokens, costs.rollout.completion_tokens)
    assert same == (ref.calls, ref.prompt_tokens, ref.completion_tokens), "the policy's calls are the same"
    assert costs.rollout.cost_usd == pytest.approx(ref.cost_usd)
    assert costs.judge.calls == judge.requests
    assert (costs.judge.prompt_tokens, costs.judge.completion_tokens) == (
        judge.prompt_tokens,
        judge.completion_tokens,
    )
    assert costs.judge.cost_usd == pytest.approx(judge.cost_usd())
    assert costs.total.cost_usd == pytest.approx(
        costs.rollout.cost_usd + costs.proposal.cost_usd + costs.judge.cost_usd
    )


@pytest.mark.slow  # minutes: CI skips it (pytest -m slow)
@pytest.mark.parametrize("budget", ["max_spend_usd", "max_token_limit"])
async def test_the_judges_spend_counts_under_the_budgets(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    task_app: BackgroundServer,
    banking77_data: Banking77Data,
    task_queue: str,
    reference_result: OptimizationResult,
    budget: str,
) -> None:
    """USD: a budget the policy and the meta-model alone stay far below (the judge is dear), so the judge's
    spend stops the job. Tokens: less than the reference job's policy and meta-model tokens. Either way the
    total, judge included, stays within it, and all the judge's spend (measured at the judge) is counted."""
    ref = reference_result.costs
    if budget == "max_spend_usd":
        limit: float = 3 * (ref.rollout.cost_usd + ref.proposal.cost_usd)
        budgets = [f"termination.max_spend_usd={limit}"]
    else:
        limit = int(0.6 * (ref.rollout.total_tokens + ref.proposal.total_tokens))
        budgets = [f"termination.max_token_limit={limit}", "termination.max_spend_usd=10.0"]
    judge = Judge(grading(banking77_data))
    with BackgroundServer(rewardless(task_app.url)) as app, BackgroundServer(judge.app()) as judge_server:
        config = judged(job_config(app.url, simllm.url, [*SMALL_JOB, *budgets]), judge_server.url)
        result = await run(temporal_env, config, task_queue)

    costs = result.costs
    assert result.stop_reason == budget and result.status == "succeeded"
    assert result.total_trials < reference_result.total_trials
    assert costs.judge.calls == judge.requests > 0
    assert costs.judge.total_tokens == judge.prompt_tokens + judge.completion_tokens
    assert costs.judge.cost_usd == pytest.approx(judge.cost_usd()), "all the judge's spend counted"
    if budget == "max_spend_usd":
        assert costs.total.cost_usd <= limit, f"overspent: {costs.total.cost_usd} > {limit}"
        assert costs.rollout.cost_usd + costs.proposal.cost_usd < limit / 2, "the judge's spend binds"
    else:
        assert costs.total.total_tokens <= limit, f"overspent: {costs.total.total_tokens} > {limit}"
    assert result.best_test_score is not None, "the final test evaluation was kept in the budget"


# ---- the evaluation activity, on real servers ------------------------------------------------------------


@pytest_asyncio.fixture
async def worker_side() -> AsyncIterator[TaskAppActivities]:
    """The evaluation activity with a real interceptor (what a worker runs)."""
    registry = Registry()
    with BackgroundServer(create_interceptor(registry)) as interceptor:
        async with httpx.AsyncClient(timeout=60) as http:
            resources = WorkerResources(
                registry=registry,
                interceptor_url=interceptor.url,
                http=http,
                rollout_slots=asyncio.Semaphore(16),
                environ={"ENVIRONMENT_API_KEY": TASK_APP_KEY},
            )
            yield TaskAppActivities(resources)


SEEDS = [4140, 5339, 3232, 3940, 3164, 1885, 4789, 7802]


def evaluation(
    task_app_url: str, llm_url: str, judge: JudgeConfig | None, max_cost_usd: float | None = None
) -> EvaluateInput:
    config = job_config(task_app_url, llm_url)
    target = RolloutTarget.from_config(config, "bootstrap").model_copy(
        update={"judge": judge, "judge_price": Price(**JUDGE_PRICE)}
    )
    instruction = config.stages()[0].baseline_instruction
    candidate = CompiledCandidate(stages=[StagePrompt(stage_id="default", instruction=instruction)])
    return EvaluateInput(
        job_id="pl_judge",
        label="trial-0001",
        target=target,
        candidate=candidate,
        seeds=SEEDS,
        concurrency=4,
        max_cost_usd=max_cost_usd,
    )


def judge_config(url: str, **changes: Any) -> JudgeConfig:
    return JudgeConfig(model=JUDGE_MODEL, inference_url=f"{url}/v1", **changes)


async def test_blend_scores_weight_times_the_judge_plus_the_rest_times_the_reward(
    worker_side: TaskAppActivities, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    judge = Judge(query_score, fail_first=2)  # the judge LLM fails twice: retried like the policy's calls
    with BackgroundServer(judge.app()) as judge_server:
        rewards = await ActivityEnvironment().run(
            worker_side.evaluate_candidate, evaluation(task_app.url, simllm.url, None)
        )
        blended = await ActivityEnvironment().run(
            worker_side.evaluate_candidate,
            evaluation(task_app.url, simllm.url, judge_config(judge_server.url, mode="blend", weight=0.25)),
        )
    assert judge.requests == len(SEEDS) + 2 and len(judge.answered) == len(SEEDS)
    by_query = {query: float(verdict) for query, _, verdict in judge.answered}
    assert len(set(by_query.values())) > 1, "the judge's scores differ between seeds"
    assert {o.score for o in rewards.outcomes} == {0.0, 1.0}, "some rollouts right, some wrong"
    judged_scores = sorted(o.judge_score or 0.0 for o in blended.outcomes)
    assert judged_scores == sorted(by_query.values())
    for plain, blend in zip(rewards.outcomes, blended.outcomes, strict=True):
        assert blend.error is None and blend.reward == plain.score and blend.judge_score is not None
        assert blend.score == pytest.approx(0.25 * blend.judge_score + 0.75 * plain.score)
        policy = blend.policy_usage  # the judge's usage is reported apart from the policy's
        assert (policy.calls, policy.prompt_tokens, policy.completion_tokens) == (
            plain.usage.calls,
            plain.usage.prompt_tokens,
            plain.usage.completion_tokens,
        )
        assert policy.cost_usd == pytest.approx(plain.usage.cost_usd)
        assert blend.judge_usage.calls == 1 and blend.judge_usage.cost_usd > 0
    spent = sum(o.judge_usage.cost_usd for o in blended.outcomes)
    assert spent == pytest.approx(judge.cost_usd())


@pytest.mark.parametrize(
    "answer", ["The answer is correct.", "Score: 0.9", "1.5", "-0.5", "", '{"score": "1"}']
)
async def test_an_unparseable_judge_answer_is_an_error_never_a_score(
    worker_side: TaskAppActivities, simllm: BackgroundServer, task_app: BackgroundServer, answer: str
) -> None:
    judge = Judge(lambda query, intent: answer)
    with BackgroundServer(judge.app()) as judge_server, BackgroundServer(rewardless(task_app.url)) as app:
        out = await ActivityEnvironment().run(
            worker_side.evaluate_candidate, evaluation(app.url, simllm.url, judge_config(judge_server.url))
        )
    assert judge.requests == len(SEEDS), "asked once per rollout: an unparseable answer is not retried"
    for o in out.outcomes:
        assert (o.score, o.error, o.attempts) == (None, "judge_unparseable", 1), o.error_detail
        assert "judge answer unparseable" in (o.error_detail or "")
        assert o.judge_usage.calls == 1 and o.judge_usage.cost_usd > 0, "its spend still counts"


async def test_the_judges_calls_count_against_the_evaluations_allowance(
    worker_side: TaskAppActivities, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    """An allowance the policy's calls fit in (an upper bound of ~0.0003 USD each) but not one judge call's
    (~0.006 USD at the judge's price): the judge is never called, the rollouts are `budget` errors."""
    judge = Judge(query_score)
    with BackgroundServer(judge.app()) as judge_server, BackgroundServer(rewardless(task_app.url)) as app:
        config = judge_config(judge_server.url)
        out = await ActivityEnvironment().run(
            worker_side.evaluate_candidate, evaluation(app.url, simllm.url, config, max_cost_usd=0.004)
        )
    assert judge.requests == 0
    assert {o.error for o in out.outcomes} == {"budget"}
    assert all(o.usage.calls == 1 and o.judge_usage.calls == 0 for o in out.outcomes)
