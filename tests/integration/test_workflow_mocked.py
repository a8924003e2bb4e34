"""The workflow alone, fast: the real dev server and MiproWorkflow, with its activities replaced by small
in-process fakes (as the Temporal samples test workflows). The fakes score a candidate from its instruction
text, so the test knows which prompt the search must find, and record every call they get."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from mipro.activities.search import suggest_candidates
from mipro.activity_models import (
    EvaluateBatchInput,
    EvaluateBatchOutput,
    EvaluateInput,
    EvaluateOutput,
    HealthCheckInput,
    ProposeInput,
    ProposeOutput,
    SuggestInput,
    SuggestOutput,
    TaskAppInfo,
)
from mipro.config import JobConfig
from mipro.errors import FailureType
from mipro.job_models import EventsQuery, OptimizationResult
from mipro.starter import jobs
from mipro.types import ChatMessage, ErrorKind, FewShotExample, SeedOutcome, StagePrompt, Usage
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import SMALL_JOB, job_config

pytestmark = pytest.mark.integration

GOOD = "Answer with the single best intent label; GOOD"


def score_of(instruction: str, seed: int) -> float:
    """The fake task: the GOOD instruction is right on 3 seeds of 4, any other on 1 of 2."""
    if GOOD in instruction:
        return 0.0 if seed % 4 == 0 else 1.0
    return 1.0 if seed % 2 == 0 else 0.0


@dataclass
class FakeActivities:
    evaluations: list[EvaluateInput] = field(default_factory=list)
    batches: list[EvaluateBatchInput] = field(default_factory=list)
    health_checks: list[HealthCheckInput] = field(default_factory=list)
    proposals: list[ProposeInput] = field(default_factory=list)
    failing_labels: tuple[str, ...] = ()  # evaluations whose label starts with one of these fail
    failing_error: ErrorKind = "no_reward"  # a kind that is not re-run
    outage_at: str | None = None  # the app goes down when an evaluation with this label starts ...
    outage_checks: int = 0  # ... and answers again after this many failed health checks
    down: bool = False
    score: Callable[[StagePrompt, int], float] = lambda stage, seed: score_of(stage.instruction, seed)

    @activity.defn(name="check_task_app")
    async def check_task_app(self, inp: HealthCheckInput) -> TaskAppInfo:
        self.health_checks.append(inp)
        if self.down:
            self.outage_checks -= 1
            self.down = self.outage_checks > 0
            raise ApplicationError("connection refused (fake outage)", type=FailureType.HEALTH_CHECK)
        return TaskAppInfo(healthy=True, data_source="fake data", simulated_llm=True)

    @activity.defn(name="evaluate_candidate")
    async def evaluate_candidate(self, inp: EvaluateInput) -> EvaluateOutput:
        self.evaluations.append(inp)
        if inp.label == self.outage_at:
            self.down = True
        if self.down or inp.label.startswith(self.failing_labels):
            kind: ErrorKind = "connection" if self.down else self.failing_error
            return EvaluateOutput(
                outcomes=[SeedOutcome(seed=s, error=kind, error_detail="fake") for s in inp.seeds]
            )
        stage = inp.candidate.stages[0]
        usage = Usage(calls=1, prompt_tokens=100, completion_tokens=5)
        outcomes = []
        for seed in inp.seeds:
            score = self.score(stage, seed)
            example = None
            if inp.capture_examples:
                answer = ChatMessage(role="assistant", content=f"label-{seed}")
                example = FewShotExample(
                    seed=seed, stage_id=stage.stage_id, input=f"query {seed}", answer=answer, score=score
                )
            outcomes.append(SeedOutcome(seed=seed, score=score, usage=usage, example=example))
        return EvaluateOutput(outcomes=outcomes)

    @activity.defn(name="evaluate_candidates")
    async def evaluate_candidates(self, inp: EvaluateBatchInput) -> EvaluateBatchOutput:
        self.batches.append(inp)
        return EvaluateBatchOutput(outputs=[await self.evaluate_candidate(item) for item in inp.items])

    @activity.defn(name="propose_instructions")
    async def propose_instructions(self, inp: ProposeInput) -> ProposeOutput:
        self.proposals.append(inp)
        texts = [GOOD if k == 1 else f"Plain instruction {k} ({len(inp.existing)})" for k in range(inp.n)]
        return ProposeOutput(
            instructions=texts, usage=Usage(calls=inp.n, prompt_tokens=50, completion_tokens=20)
        )


@asynccontextmanager
async def serving(env: WorkflowEnvironment, fakes: FakeActivities) -> AsyncIterator[str]:
    """A worker on a task queue of its own serving the workflow with these fakes (and the real TPE)."""
    task_queue = f"fake-{uuid.uuid4().hex[:8]}"
    activities = [
        fakes.check_task_app,
        fakes.evaluate_candidate,
        fakes.evaluate_candidates,
        fakes.propose_instructions,
        suggest_candidates,
    ]
    async with Worker(env.client, task_queue=task_queue, workflows=[MiproWorkflow], activities=activities):
        yield task_queue


@pytest_asyncio.fixture
async def fake_worker(temporal_env: WorkflowEnvironment) -> AsyncIterator[tuple[str, FakeActivities]]:
    fakes = FakeActivities()
    async with serving(temporal_env, fakes) as task_queue:
        yield task_queue, fakes


def fake_config(*overrides: str) -> JobConfig:
    # URLs nobody calls: every activity is a fake. Short pauses between re-runs keep the test fast.
    fast = ["mipro.rerun_delays_seconds=[0.1, 0.1]", "mipro.outage_poll_max_seconds=0.2"]
    return job_config("http://127.0.0.1:9", "http://127.0.0.1:9", [*SMALL_JOB, *fast, *overrides])


async def run_job(env: WorkflowEnvironment, task_queue: str, config: JobConfig) -> OptimizationResult:
    handle = await jobs.start_job(env.client, config, task_queue=task_queue)
    return await handle.result()


async def event_types(env: WorkflowEnvironment, job_id: str) -> list[str]:
    events = await jobs.handle(env.client, job_id).query(MiproWorkflow.events, EventsQuery(limit=5000))
    return [e.type for e in events]


async def test_the_search_finds_the_prompt_the_task_rewards(
    temporal_env: WorkflowEnvironment, fake_worker: tuple[str, FakeActivities]
) -> None:
    task_queue, fakes = fake_worker
    config = fake_config()
    result = await run_job(temporal_env, task_queue, config)

    assert result.status == "succeeded"
    # The fakes' space is small (few instructions, few demos): the search may exhaust it before the plan ends.
    planned = config.mipro.num_iterations * config.mipro.num_evaluations_per_iteration
    assert 0 < result.total_trials <= planned
    assert result.total_trials == planned or result.stop_reason == "search_space_exhausted"
    assert GOOD in result.best.instructions[0]
    assert result.best_test_score == pytest.approx(0.75, abs=0.1)
    assert result.baseline_test_score == pytest.approx(0.5, abs=0.1)
    assert result.task_app_data_source == "fake data"
    assert result.simulated_llm is True
    labels = [e.label for e in fakes.evaluations]
    assert labels[:2] == ["bootstrap", "baseline-val"] or set(labels[:2]) == {"bootstrap", "baseline-val"}
    assert {"test-best", "test-baseline"} <= set(labels)
    assert any(label.startswith("val-") for label in labels)
    assert len(fakes.health_checks) == 1 and len(fakes.proposals) == 1
    # The reference's OptimizationResult names, and the best candidate's scores and demos.
    best = result.best
    assert best.test_score == result.best_test_score and best.validation_score == result.best_validation_score
    assert best.minibatch_score is not None and result.best_minibatch_score == best.minibatch_score
    assert best.instruction_lines == [GOOD] == result.instruction_lines
    [payload] = best.stage_payloads.values()
    assert (
        payload.instruction_indices == best.choice.instruction
        and payload.demo_indices == best.demo_indices[0]
    )
    optimized = {c.key: c.validation_score for c in result.optimized_candidates}
    assert best.choice.key in optimized and len(optimized) == len(result.optimized_candidates)
    assert result.baseline_validation_score is not None
    assert all(v is not None and v > result.baseline_validation_score for v in optimized.values())
    assert result.balance_type == "budget_remaining"
    assert result.final_balance_usd == pytest.approx(
        config.termination.max_spend_usd - result.costs.total.cost_usd
    )
    assert result.model_dump(mode="json")["costs"]["total"]["calls"] == result.costs.total.calls


async def test_each_pool_gets_its_own_env_config(
    temporal_env: WorkflowEnvironment, fake_worker: tuple[str, FakeActivities]
) -> None:
    task_queue, fakes = fake_worker
    config = fake_config('pool_env_config.test.split="test"', 'pool_env_config.validation.split="dev"')
    await run_job(temporal_env, task_queue, config)

    splits = {e.label: e.target.env_config.get("split") for e in fakes.evaluations}
    assert splits["test-best"] == "test" and splits["test-baseline"] == "test"
    assert splits["baseline-val"] == "dev"
    assert all(splits[label] == "dev" for label in splits if label.startswith("val-"))
    shared = config.env_config.get("split")  # the shipped config's env_config, for every other pool
    assert shared != "test"
    assert splits["bootstrap"] == shared
    assert all(splits[label] == shared for label in splits if label.startswith(("trial-", "baseline-i")))
    check = fakes.health_checks[0]
    assert check.pool_splits == {
        "bootstrap_train_seeds": shared,
        "online_pool": shared,
        "val_seeds": "dev",
        "test_pool": "test",
        "reference_pool": shared,  # the reference corpus runs with the bootstrap pool's env config
    }


async def test_a_validation_with_no_scored_rollout_has_no_score_and_decides_nothing(
    temporal_env: WorkflowEnvironment, fake_worker: tuple[str, FakeActivities]
) -> None:
    task_queue, fakes = fake_worker
    fakes.failing_labels = ("val-",)
    result = await run_job(temporal_env, task_queue, fake_config())

    assert any(e.label.startswith("val-") for e in fakes.evaluations)  # promotions were tried ...
    assert result.validations == []  # ... and none has a score, 0.0 or otherwise
    assert result.best.choice.key == "0:0"  # so the baseline stays best
    assert all(c.validation_score is None for c in result.attempted_candidates if c.key != "0:0")
    assert "mipro.fulleval.failed" in await event_types(temporal_env, result.job_id)


async def test_a_job_stopped_on_errors_says_so_and_starts_nothing_after_the_stop(
    temporal_env: WorkflowEnvironment, fake_worker: tuple[str, FakeActivities]
) -> None:
    task_queue, fakes = fake_worker
    fakes.failing_labels = ("trial-",)
    config = fake_config("termination.max_consecutive_errors=20")
    result = await run_job(temporal_env, task_queue, config)

    assert result.status == "stopped_on_errors"
    assert result.stop_reason == "max_consecutive_errors"
    assert result.best_test_score is None and result.baseline_test_score is None
    labels = [e.label for e in fakes.evaluations]
    assert not any(label.startswith(("test-", "val-")) for label in labels)
    # Trials run 3 at a time: the stop comes within the first iteration's 3 x 16 failed rollouts, and no
    # trial of a later iteration starts.
    assert 2 <= sum(label.startswith("trial-") for label in labels) <= config.mipro.max_parallel_trials
    assert any("stopped on errors" in w for w in result.warnings)
    assert "mipro.job.stopped" in await event_types(temporal_env, result.job_id)


async def test_an_outage_is_waited_out_and_changes_nothing(
    temporal_env: WorkflowEnvironment, fake_worker: tuple[str, FakeActivities]
) -> None:
    task_queue, fakes = fake_worker
    undisturbed = await run_job(temporal_env, task_queue, fake_config())
    fakes.evaluations.clear()
    fakes.outage_at, fakes.outage_checks = "trial-0004", 3
    disturbed = await run_job(temporal_env, task_queue, fake_config())

    assert disturbed.status == "succeeded" and disturbed.stop_reason == undisturbed.stop_reason
    assert disturbed.best.choice == undisturbed.best.choice
    assert disturbed.best_test_score == undisturbed.best_test_score
    assert [t.minibatch_score for t in disturbed.trials] == [t.minibatch_score for t in undisturbed.trials]
    assert [t.n for t in disturbed.trials] == [t.n for t in undisturbed.trials]  # every seed scored
    assert disturbed.rollout_errors == 0 and disturbed.errors_by_kind.get("connection", 0) > 0
    types = await event_types(temporal_env, disturbed.job_id)
    assert types.index("mipro.task_app.unavailable") < types.index("mipro.task_app.available")
    assert any(e.label.startswith("trial-0004-rerun") for e in fakes.evaluations)


async def test_instruction_and_demo_caps_and_strict_transforms_take_effect(
    temporal_env: WorkflowEnvironment, fake_worker: tuple[str, FakeActivities]
) -> None:
    task_queue, fakes = fake_worker
    probe = fake_config()
    system = probe.stages()[0].baseline_instruction
    stage = f'mipro.stages=[{{stage_id="main", baseline_instruction="""{system}""", max_demo_slots=1}}]'
    result = await run_job(temporal_env, task_queue, fake_config("mipro.max_instruction_sets=3", stage))
    assert len(result.instructions[0]) == 3 and fakes.proposals[0].n == 3 - 1
    assert all(c.demo_counts[0] <= 1 for c in result.attempted_candidates)

    fakes.failing_labels, fakes.failing_error = ("trial-0001",), "transform"
    with pytest.raises(WorkflowFailureError) as info:
        await run_job(temporal_env, task_queue, fake_config("mipro.transform_strict=true"))
    assert isinstance(info.value.cause, ApplicationError) and info.value.cause.type == FailureType.TRANSFORM


async def test_proxy_models_run_the_trials_and_the_real_model_decides(
    temporal_env: WorkflowEnvironment, fake_worker: tuple[str, FakeActivities]
) -> None:
    task_queue, fakes = fake_worker
    config = fake_config(
        'proxy_models.model="sim-proxy"',
        'proxy_models.inference_url="http://127.0.0.1:9/proxy/v1"',
        "pricing.sim-proxy={input_per_mtok=0.01, output_per_mtok=0.01}",
    )
    result = await run_job(temporal_env, task_queue, config)

    models = {e.label: (e.target.policy.model, e.target.policy.inference_url) for e in fakes.evaluations}
    proxy = ("sim-proxy", "http://127.0.0.1:9/proxy/v1")
    real = (config.policy.model, config.policy.inference_url)
    online = [label for label in models if label.startswith(("trial-", "baseline-i"))]
    assert online and all(models[label] == proxy for label in online)
    decided = [label for label in models if label.startswith(("bootstrap", "baseline-val", "val-", "test-"))]
    assert any(label.startswith("val-") for label in decided)
    assert all(models[label] == real for label in decided)
    assert result.proxy_model == "sim-proxy"
    both = [
        c
        for c in result.attempted_candidates
        if c.minibatch_score is not None and c.validation_score is not None
    ]
    assert result.proxy_candidates_compared == len(both) >= 2
    agreement = result.proxy_rank_agreement
    assert (agreement is None) == (len(both) < 3) and (agreement is None or -1.0 <= agreement <= 1.0)


async def test_re_proposal_is_grounded_in_the_scores_grows_the_space_and_keeps_the_observations(
    temporal_env: WorkflowEnvironment, fake_worker: tuple[str, FakeActivities]
) -> None:
    task_queue, fakes = fake_worker
    suggestions: list[SuggestInput] = []

    @activity.defn(name="suggest_candidates")
    async def recording_suggest(inp: SuggestInput) -> SuggestOutput:
        suggestions.append(inp)
        return await suggest_candidates(inp)

    queue = f"{task_queue}-regen"
    activities = [
        fakes.check_task_app,
        fakes.evaluate_candidate,
        fakes.evaluate_candidates,
        fakes.propose_instructions,
        recording_suggest,
    ]
    async with Worker(
        temporal_env.client, task_queue=queue, workflows=[MiproWorkflow], activities=activities
    ):
        config = fake_config("mipro.generate_at_iterations=[2]", "mipro.informative_first_iteration=false")
        result = await run_job(temporal_env, queue, config)

    first, later = fakes.proposals
    assert first.history == [] and later.history, "the later round sees the scores so far"
    scored = dict(later.history)
    assert set(scored) <= set(result.instructions[0][: len(first.existing) + first.n])
    assert max(scored.values()) > min(scored.values()), "best and worst, with their scores"
    assert len(result.instructions[0]) == len(later.existing) + later.n, (
        "the new instructions joined the space"
    )
    before = [s for s in suggestions if s.space[0] == len(later.existing)]
    after = [s for s in suggestions if s.space[0] == len(result.instructions[0])]
    assert before and after, "suggestions before and after the re-proposal"
    kept = {tuple(p) for p, _, _ in before[-1].history}
    assert kept <= {tuple(p) for p, _, _ in after[0].history}, "the TPE keeps its observations"


async def test_an_iteration_is_one_activity_holding_its_baseline_trials_and_the_due_validation(
    temporal_env: WorkflowEnvironment, fake_worker: tuple[str, FakeActivities]
) -> None:
    task_queue, fakes = fake_worker
    config = fake_config("mipro.validate_every_iterations=1")
    handle = await jobs.start_job(temporal_env.client, config, task_queue=task_queue)
    result = await handle.result()

    assert result.status == "succeeded" and result.total_trials > 0
    *iterations, closing = fakes.batches
    batches = [[item.label for item in batch.items] for batch in iterations]
    assert [b.label for b in iterations] == [f"iteration-{i:04d}" for i in range(len(batches))]
    assert all(b.concurrency == config.mipro.max_concurrent for b in fakes.batches)
    assert all(b.max_parallel == config.mipro.max_parallel_trials for b in fakes.batches)
    trials_in_batches = [label for labels in batches for label in labels if label.startswith("trial-")]
    assert trials_in_batches == [f"trial-{t:04d}" for t in range(len(trials_in_batches))]
    assert len(trials_in_batches) <= result.total_trials, "a trial whose seeds were all scored needs none"
    # Iteration 0's block was scored for the baseline during the proposal round; each later block is new.
    assert all(labels[0].startswith("baseline-i") for labels in batches[1:]), "a block new to the baseline"
    assert not any(label.startswith("baseline-i") for label in batches[0])
    # A promotion due after an iteration is validated beside the next iteration's trials: the validations
    # of the first iterations' leaders ride along. After the search one activity holds the last
    # promotions (the pending one, the last leader's) and the baseline's test, which needs neither.
    riding = [label for labels in batches[1:] for label in labels if label.startswith("val-")]
    last = [item.label for item in closing.items]
    assert riding, "no validation ran beside an iteration's trials"
    assert closing.label == "closing" and last[-1] == "test-baseline"
    assert 1 <= len(last[:-1]) <= 2 and all(label.startswith("val-") for label in last[:-1]), last
    alone = [e.label for e in fakes.evaluations if e.label.startswith("val-")]
    assert sorted(alone) == sorted(riding + last[:-1]), "every validation ran in a batch"
    assert len(result.validations) == len(alone)
    assert result.baseline_test_score is not None and result.best_test_score is not None
    # The TPE ran as a local activity: no activity task for it on the server's queues.
    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert "suggest_candidates" not in scheduled and "evaluate_candidates" in scheduled
    assert any(e.HasField("marker_recorded_event_attributes") for e in history.events)


@dataclass
class ProposalWatchingBaseline(FakeActivities):
    """A proposal round that waits (up to a bound) for the baseline's first block to be evaluated."""

    baseline_started: asyncio.Event = field(default_factory=asyncio.Event)
    overlapped: list[bool] = field(default_factory=list)

    @activity.defn(name="evaluate_candidate")
    async def evaluate_candidate(self, inp: EvaluateInput) -> EvaluateOutput:
        if inp.label == "baseline-i0000":
            self.baseline_started.set()
        return await super().evaluate_candidate(inp)

    @activity.defn(name="propose_instructions")
    async def propose_instructions(self, inp: ProposeInput) -> ProposeOutput:
        try:
            await asyncio.wait_for(self.baseline_started.wait(), timeout=5)  # < its heartbeat timeout
            self.overlapped.append(True)
        except TimeoutError:
            self.overlapped.append(False)
        return await super().propose_instructions(inp)


async def test_the_baseline_runs_on_the_first_block_while_the_instructions_are_proposed(
    temporal_env: WorkflowEnvironment,
) -> None:
    fakes = ProposalWatchingBaseline()
    async with serving(temporal_env, fakes) as task_queue:
        result = await run_job(temporal_env, task_queue, fake_config())

    assert result.status == "succeeded"
    assert fakes.overlapped == [True], "the proposal round ran while the baseline's first block did"
    first = next(e for e in fakes.evaluations if e.label == "baseline-i0000")
    assert sorted(first.seeds) == sorted(result.trials[0].seeds), "the first iteration's block"
    assert not any(i.label.startswith("baseline-i") for i in fakes.batches[0].items), "scored once"
