"""A short real job whose policy and meta-model are a real LLM: SmolLM2-135M-Instruct under llama.cpp's
OpenAI-compatible server (`python -m mipro.llm_server`), offline, on a 10-intent banking77 subset.

Opt-in: `pytest -m local_llm tests/integration/test_local_llm.py` (the default run skips it: it needs the
local-llm extra, whose llama-cpp-python builds from source in ~8 minutes, and the job takes minutes on 2
cores). It runs the real dev server, a worker with its interceptor, the example banking77 app and the model
server as its own process. The app is the shipped one, built over a 10-intent subset of the real Banking77
data (its constructor takes any Banking77Data), so the prompt lists those 10 intents and the seeds index
their rows. It asserts the job ran and scored, not a lift: a 135M model may show none. Its numbers are
printed and, with MIPRO_LOCAL_LLM_RESULT=path, written there as JSON.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from mipro.llm_server import DEFAULT_ALIAS
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import Banking77Data
from mipro.worker import WorkerOptions, running_worker
from tests.conftest import TASK_APP_KEY, job_config

pytestmark = pytest.mark.local_llm  # only: `-m integration` must not pull in a minutes-long job

pytest.importorskip("llama_cpp.server.app", reason="needs the local-llm extra: pip install -e '.[local-llm]'")

INTENTS = [
    "activate_my_card",
    "card_arrival",
    "cash_withdrawal_charge",
    "change_pin",
    "declined_transfer",
    "exchange_rate",
    "lost_or_stolen_card",
    "pending_top_up",
    "card_payment_fee_charged",
    "terminate_account",
]


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m mipro.llm_server` on a free port; its OpenAI-compatible base URL (…/v1)."""
    log = tmp_path_factory.mktemp("llm") / "llm_server.log"
    with log.open("w") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mipro.llm_server", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=errors,  # a file: a pipe nobody reads would fill up and stall the server
            text=True,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("LLM_SERVER_READY "):
            pytest.fail(f"llm server did not start: {line!r} {log.read_text()[-2000:]}")
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def subset_app(banking77_data: Banking77Data) -> Iterator[tuple[BackgroundServer, Banking77Data]]:
    if banking77_data.is_fallback or not set(INTENTS) <= set(banking77_data.labels):
        pytest.skip("needs the real Banking77 data (../shared/datasets/banking77 or BANKING77_DATA_DIR)")
    chosen = set(INTENTS)
    subset = Banking77Data(
        labels=[label for label in banking77_data.labels if label in chosen],
        train=[row for row in banking77_data.train if row.label in chosen],
        test=[row for row in banking77_data.test if row.label in chosen],
        source=f"{banking77_data.source} (10-intent subset)",
    )
    # LLM calls queue at the one model instance: give them time (the default is 60 s).
    with BackgroundServer(create_banking77(subset, api_key=TASK_APP_KEY, llm_timeout=900.0)) as server:
        yield server, subset


def _seeds(n_rows: int) -> dict[str, list[int]]:
    """Disjoint pools of train-row indices (the app's seed is the row index, modulo the rows)."""
    order = random.Random(10).sample(range(n_rows), 12 + 36 + 20 + 50)
    return {
        "bootstrap_train_seeds": order[:12],
        "online_pool": order[12:48],
        "val_seeds": order[48:68],
        "test_pool": order[68:],
    }


async def test_short_job_on_the_real_local_model(
    temporal_env: WorkflowEnvironment, llm_server: str, subset_app, task_queue: str
) -> None:
    app, subset = subset_app
    base = llm_server.removesuffix("/v1")
    pools = _seeds(len(subset.train))
    overrides = [
        f'policy.model="{DEFAULT_ALIAS}"',
        'policy.provider="llama-cpp"',
        "policy.max_completion_tokens=48",
        f'mipro.meta.model="{DEFAULT_ALIAS}"',
        'mipro.meta.provider="llama-cpp"',
        "mipro.meta.max_tokens=160",
        f"pricing.{DEFAULT_ALIAS}.input_per_mtok=0.0",  # free: it runs here
        f"pricing.{DEFAULT_ALIAS}.output_per_mtok=0.0",
        "mipro.num_iterations=3",
        "mipro.num_evaluations_per_iteration=2",
        "mipro.batch_size=6",
        "mipro.max_concurrent=2",  # one model instance answers one request at a time
        "mipro.max_parallel_trials=1",
        "mipro.max_instructions=3",
        "mipro.max_demo_set_size=2",
        "mipro.max_demo_sets=3",
        "mipro.rollout_timeout_seconds=900",
        "termination.max_duration_minutes=90",
        *(f"mipro.{name}={json.dumps(seeds)}" for name, seeds in pools.items()),
    ]
    config = job_config(app.url, base, overrides)
    client = temporal_env.client
    started = time.perf_counter()
    async with running_worker(client, WorkerOptions(task_queue=task_queue, max_concurrent_rollouts=4)):
        handle = await jobs.start_job(client, config, task_queue=task_queue)
        result = await jobs.result(client, handle.id)
    wall = time.perf_counter() - started

    numbers = {
        "model": DEFAULT_ALIAS,
        "intents": len(subset.labels),
        "status": result.status,
        "baseline_test_score": result.baseline_test_score,
        "best_test_score": result.best_test_score,
        "lift": result.lift,
        "test_seeds": len(pools["test_pool"]),
        "baseline_validation_score": result.baseline_validation_score,
        "best_validation_score": result.best_validation_score,
        "trials": result.total_trials,
        "candidates": len(result.attempted_candidates),
        "rollouts": result.total_rollouts,
        "rollout_errors": result.rollout_errors,
        "errors_by_kind": result.errors_by_kind,
        "job_seconds": round(result.elapsed_seconds, 1),
        "wall_seconds": round(wall, 1),
        "rollouts_per_second": round(result.total_rollouts / max(result.elapsed_seconds, 1e-9), 3),
        "tokens": result.costs.total.total_tokens,
        "best_choice": result.best.choice.key,
        "best_instruction": result.best.instructions[0] if result.best.instructions else None,
        "simulated_llm": result.simulated_llm,
    }
    print("LOCAL_LLM_RESULT " + json.dumps(numbers))
    if target := os.environ.get("MIPRO_LOCAL_LLM_RESULT"):
        Path(target).write_text(json.dumps(numbers, indent=2) + "\n")

    assert result.status == "succeeded", result.model_dump_json()[:2000]
    assert not result.simulated_llm, "a real model, not the simulated one"
    assert result.total_trials == 3 * 2
    assert result.baseline_test_score is not None and result.best_test_score is not None
    assert 0.0 <= result.baseline_test_score <= 1.0 and 0.0 <= result.best_test_score <= 1.0
    assert result.rollout_errors <= 0.1 * result.total_rollouts, result.errors_by_kind
    assert result.costs.rollout.calls > 0 and result.costs.rollout.total_tokens > 0
