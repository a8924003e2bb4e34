"""`mipro demo`: one full optimization on the embedded stack, offline.

Starts (or reuses) the Temporal dev server, the simulated LLM, an example task app (`--app`: banking77, the
default, or clinc150) and a worker in this process, runs the job from configs/<app>.toml with live
progress, and prints the result.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from fastapi import FastAPI

from mipro.api.app import PREFIX
from mipro.api.app import create_app as create_api
from mipro.api.auth import new_key
from mipro.api.settings import ApiSettings
from mipro.config import load_config_file
from mipro.serving import BackgroundServer
from mipro.simllm.app import create_app as create_simllm
from mipro.simllm.settings import SimLLMSettings
from mipro.starter import jobs, render
from mipro.starter.stack import STATE_DIR, banking77_data_dir, dev_server
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import load_banking77
from mipro.taskapps.clinc150.app import create_app as create_clinc150
from mipro.taskapps.clinc150.data import load_clinc150
from mipro.worker import WorkerOptions, connect, running_worker

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_CONFIG = CONFIGS / "banking77.toml"


def demo_task_app(app: str, key: str) -> FastAPI:
    """The example task app named `app`, over its data (banking77 or clinc150), keyed with `key`."""
    if app == "clinc150":
        clinc = load_clinc150()
        render.console.print(f"clinc150 data: {clinc.source}")
        return create_clinc150(clinc, api_key=key)
    if app != "banking77":
        raise ValueError(f"unknown example task app {app!r}: banking77 or clinc150")
    data = load_banking77(banking77_data_dir())
    render.console.print(f"banking77 data: {data.source}")
    return create_banking77(data, api_key=key)


def demo_api(temporal_address: str) -> tuple[BackgroundServer, str]:
    """The REST API beside the demo's job, with a fresh key for the org the job runs in."""
    key = new_key()
    settings = ApiSettings(
        temporal_address=temporal_address, data_dir=STATE_DIR / "api", api_keys=f"default:{key}"
    )
    return BackgroundServer(create_api(settings)).start(), key


async def run_demo(
    config_path: Path | None = None, overrides: list[str] | None = None, app_name: str = "banking77"
) -> int:
    key = os.environ.setdefault("ENVIRONMENT_API_KEY", f"sk_env_{secrets.token_hex(12)}")
    config_path = config_path or CONFIGS / f"{app_name}.toml"
    with (
        dev_server() as address,
        BackgroundServer(create_simllm(SimLLMSettings())) as llm,
        BackgroundServer(demo_task_app(app_name, key)) as app,
    ):
        render.console.print(
            f"Temporal {address} (UI {jobs.ui_base(address)}), simulated LLM {llm.url}, task app {app.url}"
        )
        api, api_key = demo_api(address)
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
            render.console.print(
                f"REST API: {api.url}{PREFIX}/jobs/{handle.id} (Authorization: Bearer {api_key})"
            )
            started = time.monotonic()
            await render.watch(client, handle.id)
            result = await jobs.result(client, handle.id)
            api.stop()
        render.print_result(result, jobs.ui_link(handle.id))
        render.console.print(f"demo wall time: {time.monotonic() - started:.1f}s")
    lifted = result.lift is not None and result.lift > 0
    return 0 if lifted else 1
