"""Record the event histories of small real jobs into tests/histories/ for the replay test.

    .venv/bin/python scripts/record_histories.py [NAME [OVERRIDE ...]]

writes tests/histories/NAME_run_<i>.json (NAME defaults to "mipro"; OVERRIDEs are config overrides of the
job, e.g. `mipro.overlap_iterations=true`) and replaces only the files of that
NAME, so histories recorded by earlier versions of the workflow stay and keep being replayed: running jobs
of those versions must still replay after a change (that is what `workflow.patched` is for).

One job is paused and resumed mid-search and continues as new after every iteration, so the committed
histories cover updates, continue-as-new, parallel trials, promotions and the final evaluation. Re-record
(and commit) only for an intended change of the workflow's command sequence; otherwise a failing replay
test means the change breaks running jobs and needs `workflow.patched`.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mipro import search_attributes as sa  # noqa: E402
from mipro.config import load_config_file  # noqa: E402
from mipro.serving import BackgroundServer  # noqa: E402
from mipro.simllm.app import create_app as create_simllm  # noqa: E402
from mipro.simllm.settings import SimLLMSettings  # noqa: E402
from mipro.starter import jobs  # noqa: E402
from mipro.starter.stack import banking77_data_dir, temporal_binary  # noqa: E402
from mipro.taskapps.banking77.app import create_app as create_banking77  # noqa: E402
from mipro.taskapps.banking77.data import load_banking77  # noqa: E402
from mipro.worker import WorkerOptions, running_worker  # noqa: E402
from mipro.workflows.mipro_workflow import MiproWorkflow  # noqa: E402

OUT = REPO / "tests" / "histories"
KEY = "sk_env_recording_only"


def tiny_job(app_url: str, llm_url: str) -> list[str]:
    base = load_config_file(REPO / "configs" / "banking77.toml").mipro
    return [
        f'task_app_url="{app_url}"',
        f'policy.inference_url="{llm_url}/v1"',
        f'mipro.meta.inference_url="{llm_url}/v1"',
        f"mipro.bootstrap_train_seeds={base.bootstrap_train_seeds[:12]}",
        f"mipro.val_seeds={base.val_seeds[:6]}",
        f"mipro.online_pool={base.online_pool[:12]}",
        f"mipro.test_pool={base.test_pool[:6]}",
        "mipro.batch_size=4",
        "mipro.num_iterations=3",
        "mipro.num_evaluations_per_iteration=2",
        "mipro.max_instructions=3",
        "mipro.continue_as_new_every_trials=2",
    ]


async def record(name: str, overrides: list[str]) -> None:
    os.environ["ENVIRONMENT_API_KEY"] = KEY
    data = load_banking77(banking77_data_dir())
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        search_attributes=sa.ALL,
        dev_server_log_level="error",
    )
    with (
        BackgroundServer(create_simllm(SimLLMSettings())) as llm,
        BackgroundServer(create_banking77(data, api_key=KEY)) as app,
    ):
        job = [*tiny_job(app.url, llm.url), *overrides]
        config = load_config_file(REPO / "configs" / "banking77.toml", job)
        async with running_worker(env.client, WorkerOptions(task_queue="record")):
            handle = await jobs.start_job(
                env.client, config, job_id="pl_recorded_job_01", task_queue="record"
            )
            while (await jobs.progress(env.client, handle.id)).trials_done < 1:
                await asyncio.sleep(0.05)
            await handle.execute_update(MiproWorkflow.pause)
            await handle.execute_update(MiproWorkflow.resume)
            await handle.result()
        OUT.mkdir(parents=True, exist_ok=True)
        for old in OUT.glob(f"{name}_run_*.json"):
            old.unlink()
        runs = []
        while not any(r.status and r.status.name == "COMPLETED" for r in runs):  # visibility lags a little
            await asyncio.sleep(0.2)
            runs = [r async for r in env.client.list_workflows(f"WorkflowId = '{handle.id}'")]
        index = 0
        for run in runs:
            history = await env.client.get_workflow_handle(handle.id, run_id=run.run_id).fetch_history()
            text = history.to_json()
            assert KEY not in text, "a secret reached the workflow history"
            (OUT / f"{name}_run_{index}.json").write_text(text)
            index += 1
        print(f"recorded {index} runs into {OUT}")
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record(sys.argv[1] if len(sys.argv) > 1 else "mipro", sys.argv[2:]))
