"""A full job on banking77 seeds with the simulated LLM, on the real dev server with real HTTP."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from mipro.job_models import EventsQuery
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.starter.render import best_prompt_panels
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import SMALL_JOB, job_config


async def test_full_job_beats_baseline_on_held_out_seeds(
    temporal_env: WorkflowEnvironment, simllm: BackgroundServer, task_app: BackgroundServer, task_queue: str
) -> None:
    config = job_config(task_app.url, simllm.url, [*SMALL_JOB, "mipro.generate_at_iterations=[2]"])
    client = temporal_env.client
    async with running_worker(client, WorkerOptions(task_queue=task_queue)):
        handle = await jobs.start_job(client, config, task_queue=task_queue)
        result = await jobs.result(client, handle.id)
        events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))

    assert result.status == "succeeded"
    assert result.simulated_llm
    assert result.baseline_test_score is not None and result.best_test_score is not None
    assert result.best_test_score > result.baseline_test_score, result.model_dump_json(indent=1)[:2000]
    assert result.lift == result.best_test_score - result.baseline_test_score
    planned = 4 * 3
    assert result.total_trials == planned
    seen: set[str] = set()
    reruns = []  # trials that re-ran an earlier candidate: the leader, every 5th trial
    for trial in result.trials:
        if trial.choice.key in seen:
            reruns.append(trial)
        seen.add(trial.choice.key)
    # iterations of 3 trials; those holding trial 4 or 9 (every 5th) end with the leader's re-run
    assert reruns and {t.trial for t in reruns} <= {5, 11}, [t.trial for t in reruns]
    by_key = {c.key: c for c in result.attempted_candidates}
    assert all(by_key[t.choice.key].minibatch_n >= 2 * 16 for t in reruns), "its lift now rests on 2 blocks"
    assert len(result.attempted_candidates) >= planned - len(reruns)  # the rest are distinct (+ the baseline)
    assert result.rollout_errors == 0
    assert result.costs.rollout.calls == result.total_rollouts
    assert result.costs.rollout.cost_usd > 0 and result.costs.proposal.cost_usd > 0
    assert result.best.choice.key != "0:0"
    system = next(m for m in result.best.messages if m.role == "system")
    assert system.content == result.best.instructions[0] or result.best.instructions[0] in (
        system.content or ""
    )
    assert any("{query}" in (m.content or "") for m in result.best.messages), "placeholders kept for reuse"
    assert result.best.stage_messages == {"default": result.best.messages}, "one stage: the same messages"
    [(title, shown)] = best_prompt_panels(result)
    assert title == f"best prompt (candidate {result.best.choice.key})" and shown == result.best.messages

    proposed = [e.data for e in events if e.type == "mipro.instruction.proposed"]
    initial = [p for p in proposed if p["iteration"] == 0]
    later = [p for p in proposed if p["iteration"] == 2]
    assert len(initial) == config.mipro.max_instructions and later, "instructions re-proposed at iteration 2"
    assert [p["instruction_id"] for p in proposed] == list(range(len(proposed)))

    first = [t.choice.key for t in result.trials if t.iteration == 0]
    assert first == ["0:1", "1:1", "2:1"], "iteration 0 tries each instruction with the full demo set"
    assert len({t.choice.key for t in result.trials}) == planned - len(reruns), "the TPE repeats nothing"
