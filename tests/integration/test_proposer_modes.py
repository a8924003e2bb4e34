"""Proposer modes end to end (issue 9 item 2): real dev server, worker, banking77 task app, simulated LLM as
policy; the meta-model is the simulated LLM behind a recorder (tests/unit/test_proposer_modes.py), which also
answers batch requests with several of its proposals. Each assertion fails with its feature switched off."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from mipro.config import JobConfig, load_config_file
from mipro.job_models import EventsQuery, OptimizationResult
from mipro.proposer.profile import EFFORT
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.taskapps.banking77.data import Banking77Data
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import REPO, SMALL_JOB
from tests.unit.test_proposer_modes import FIXED, batch_size_asked, proposals, recording_meta_model, summaries

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # minutes: CI skips it (pytest -m slow)

SPEC_MD = """# Banking router spec

- Purpose: send each customer message to the team that owns its intent.
- Rule R7: answer with exactly one intent label from the list, never a guess outside it.
"""
METAPROMPT = "Write {n} instructions for stage {stage_id} that obey every rule of this spec:\n{spec}"
FAST = ["mipro.num_iterations=2", "mipro.rerun_delays_seconds=[]"]


@pytest.fixture
def meta_calls() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def meta_server(meta_calls: list[dict[str, Any]]) -> Iterator[BackgroundServer]:
    with BackgroundServer(recording_meta_model(meta_calls)) as server:
        yield server


@pytest.fixture
def repeating_meta_server(meta_calls: list[dict[str, Any]]) -> Iterator[BackgroundServer]:
    with BackgroundServer(recording_meta_model(meta_calls, fixed=FIXED)) as server:
        yield server


def config_file(tmp_path: Path, with_meta_settings: bool = True) -> Path:
    """The shipped config, optionally without meta.temperature / meta.max_tokens (for the levels to set)."""
    text = (REPO / "configs" / "banking77.toml").read_text()
    if not with_meta_settings:
        text, count = re.subn(r"(?m)^(temperature = 0\.8|max_tokens = 1024)\n", "", text)
        assert count == 2
    path = tmp_path / "job.toml"
    path.write_text(text)
    return path


def reference_seeds(config: JobConfig, n: int = 12) -> list[int]:
    """Seeds whose banking77 rows (seed % 10003) no other pool reads."""
    m = config.mipro
    used = {s % 10003 for s in [*m.bootstrap_train_seeds, *m.online_pool, *m.val_seeds, *m.test_pool]}
    return random.Random(9).sample(sorted(set(range(10003)) - used), n)


async def run(
    env: WorkflowEnvironment, config: JobConfig, queue: str
) -> tuple[OptimizationResult, list[str]]:
    async with running_worker(env.client, WorkerOptions(task_queue=queue)):
        handle = await jobs.start_job(env.client, config, task_queue=queue)
        result = await jobs.result(env.client, handle.id)
        events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))
    return result, [e.type for e in events]


async def test_synth_proposer_spec_file_metaprompt_reference_corpus_batches_and_levels(
    temporal_env: WorkflowEnvironment,
    task_app: BackgroundServer,
    simllm: BackgroundServer,
    meta_server: BackgroundServer,
    meta_calls: list[dict[str, Any]],
    banking77_data: Banking77Data,
    task_queue: str,
    tmp_path: Path,
) -> None:
    (tmp_path / "spec.md").write_text(SPEC_MD)
    path = config_file(tmp_path, with_meta_settings=False)
    probe = load_config_file(path)
    reference = reference_seeds(probe)
    config = load_config_file(
        path,
        [
            f'task_app_url="{task_app.url}"',
            f'policy.inference_url="{simllm.url}/v1"',
            f'mipro.meta.inference_url="{meta_server.url}/v1"',
            *SMALL_JOB,
            *FAST,
            'mipro.proposer_mode="synth"',
            'mipro.spec_path="spec.md"',
            f'mipro.metaprompt="""{METAPROMPT}"""',
            'mipro.proposer_effort="HIGH"',
            'mipro.proposer_output_tokens="RAPID"',
            "mipro.instructions_per_batch=3",
            "mipro.max_instructions=6",
            f"mipro.reference_pool={reference}",
        ],
    )
    (tmp_path / "spec.md").unlink()  # read at config load: the job never opens it
    result, events = await run(temporal_env, config, task_queue)

    assert result.status == "succeeded", result.stop_reason
    # max_instructions: the baseline and 5 proposals, asked in batches of up to 3 (a duplicate is re-asked):
    # fewer calls than instructions.
    assert len(result.instructions[0]) == 6
    asked = [batch_size_asked(c) for c in proposals(meta_calls)]
    assert asked[0] == 3 and max(asked) == 3 and sum(asked) >= 5 and len(asked) < 5, asked
    assert result.costs.proposal.calls == len(meta_calls), "every meta-model call is accounted"
    assert summaries(meta_calls) == [], "the synth proposer writes no data summary"
    queries = {banking77_data.train[s % len(banking77_data.train)].text.strip()[:300] for s in reference}
    for call in proposals(meta_calls):
        system, user = (m["content"] for m in call["messages"])
        # synth: grounded in the spec file's text, through the custom metaprompt; no DSPy tip.
        assert SPEC_MD.strip() in user and "<tip>" not in user
        assert f"Write {batch_size_asked(call)} instructions for stage default that obey" in system
        assert "obey every rule of this spec:\n# Banking router spec" in system
        # proposer_effort HIGH: temperature 1.0 (meta sets none), 10 demos and up to 50 reference inputs;
        # proposer_output_tokens RAPID: 256 tokens per instruction asked, at most 60 words.
        assert call["temperature"] == EFFORT["HIGH"].temperature
        assert call["max_tokens"] == 256 * batch_size_asked(call)
        assert "- is at most 60 words long." not in system, "the custom metaprompt replaces the guidance"
        assert 3 < user.count("<example index=") <= EFFORT["HIGH"].demos
        # reference_pool: the inputs of the baseline's rollouts on those seeds, shown without outputs.
        shown = set(re.findall(r'<input index="\d+">\n(.*?)\n</input>', user, re.DOTALL))
        assert shown and shown <= queries and len(shown) == min(len(queries), EFFORT["HIGH"].reference_inputs)
    assert "mipro.reference.captured" in events
    assert result.total_rollouts >= len(reference)


async def test_dspy_proposer_data_summary_effort_and_duplicate_retry_limit(
    temporal_env: WorkflowEnvironment,
    task_app: BackgroundServer,
    simllm: BackgroundServer,
    repeating_meta_server: BackgroundServer,
    meta_calls: list[dict[str, Any]],
    task_queue: str,
    tmp_path: Path,
) -> None:
    config = load_config_file(
        config_file(tmp_path),
        [
            f'task_app_url="{task_app.url}"',
            f'policy.inference_url="{simllm.url}/v1"',
            f'mipro.meta.inference_url="{repeating_meta_server.url}/v1"',
            *SMALL_JOB,
            *FAST,
            'mipro.proposer_effort="LOW"',
            "mipro.max_instructions=4",
            "mipro.duplicate_retry_limit=2",
        ],
    )
    result, _ = await run(temporal_env, config, task_queue)

    assert result.status == "succeeded", result.stop_reason
    # A meta-model repeating itself: accepted once; the 2 others asked and the 2 re-asks are refused.
    assert result.instructions[0] == [config.stages()[0].baseline_instruction, FIXED]
    assert len(proposals(meta_calls)) == 3 + 2
    # dspy: a data summary first (LOW: from up to 10 demos), shown in every proposal with a tip.
    [summary] = summaries(meta_calls)
    assert meta_calls[0] is summary
    assert 0 < summary["messages"][1]["content"].count("<example index=") <= EFFORT["LOW"].summary_examples
    for call in proposals(meta_calls):
        user = call["messages"][1]["content"]
        assert "<data_summary>\nThe " in user and "<tip>" in user and "<system_spec>" not in user
        assert user.count("<example index=") == EFFORT["LOW"].demos
        assert call["temperature"] == 0.8, "the config's meta.temperature wins over LOW's 0.7"
    assert result.costs.proposal.calls == len(meta_calls)
