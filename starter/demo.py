"""`mipro demo`: one full optimization on the embedded stack, offline.

Starts (or reuses) the Temporal dev server, the simulated LLM, the example banking77 task app and a worker
in this process, runs the job from configs/banking77.toml with live progress, and prints the result.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from mipro.config import load_config_file
from mipro.serving import BackgroundServer
from mipro.simllm.app import create_app as create_simllm
from mipro.simllm.settings import SimLLMSettings
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import load_banking77
from starter import jobs, render
from starter.stack import banking77_data_dir, dev_server
from worker import WorkerOptions, connect, running_worker

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "banking77.toml"


async def run_demo(config_path: Path = DEFAULT_CONFIG, overrides: list[str] | None = None) -> int:
    key = os.environ.setdefault("ENVIRONMENT_API_KEY", f"sk_env_{secrets.token_hex(12)}")
    data = load_banking77(banking77_data_dir())
    render.console.print(f"banking77 data: {data.source}")
    with (
        dev_server() as address,
        BackgroundServer(create_simllm(SimLLMSettings())) as llm,
        BackgroundServer(create_banking77(data, api_key=key)) as app,
    ):
        render.console.print(
            f"Temporal {address} (UI http://localhost:8233), simulated LLM {llm.url}, task app {app.url}"
        )
        config = load_config_file(
            config_path,
            [
                f'task_app_url="{app.url}"',
                f'policy.inference_url="{llm.url}/v1"',
                f'mipro.meta.inference_url="{llm.url}/v1"',
                *(overrides or []),
            ],
        )
        client = await connect(address)
        async with running_worker(client, WorkerOptions()):
            handle = await jobs.start_job(client, config)
            render.console.print(f"job {handle.id} started: {jobs.ui_link(handle.id)}")
            started = time.monotonic()
            await render.watch(client, handle.id)
            result = await jobs.result(client, handle.id)
        render.print_result(result, jobs.ui_link(handle.id))
        render.console.print(f"demo wall time: {time.monotonic() - started:.1f}s")
    lifted = result.lift is not None and result.lift > 0
    return 0 if lifted else 1
