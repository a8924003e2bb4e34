"""`mipro worker` started without ENVIRONMENT_API_KEY says so on stderr before it reports WORKER_READY (the
real CLI against the real dev server); with the key it says nothing of the kind."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment


async def worker_startup(address: str, task_queue: str, env: dict[str, str], stderr: Path) -> str:
    """Start `mipro worker`, wait for its first stdout line, stop it; its stderr is left in `stderr`."""
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mipro.starter",
                "worker",
                "--address",
                address,
                "--task-queue",
                task_queue,
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
        )
    assert proc.stdout is not None
    try:
        return (await asyncio.to_thread(proc.stdout.readline)).strip()
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)


@pytest.mark.parametrize("with_key", [False, True])
async def test_worker_without_the_key_warns_visibly_at_startup(
    temporal_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, with_key: bool
) -> None:
    address = temporal_env.client.service_client.config.target_host
    env = {k: v for k, v in os.environ.items() if k != "ENVIRONMENT_API_KEY"}
    if with_key:
        env["ENVIRONMENT_API_KEY"] = "sk_env_worker_warning_test"
    first = await worker_startup(address, task_queue, env, tmp_path / "stderr")
    assert first == "WORKER_READY"
    warnings = [
        line for line in (tmp_path / "stderr").read_text().splitlines() if line.startswith("WARNING:")
    ]
    if with_key:
        assert warnings == []
    else:
        [warning] = warnings
        assert warning.startswith("WARNING: ENVIRONMENT_API_KEY is not set") and "TaskAppAuthError" in warning
