"""`mipro start` (the real command line, against the real dev server) refuses a config with a typo'd key,
suggests the key it meant, and starts no workflow."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

REPO = Path(__file__).resolve().parents[2]


async def test_a_typod_key_is_refused_with_a_suggestion_and_no_job(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text((REPO / "configs" / "banking77.toml").read_text().replace("\ngamma =", "\ngama ="))
    job_id = f"pl_typo{uuid.uuid4().hex[:10]}"
    address = temporal_env.client.service_client.config.target_host
    command = [sys.executable, "-m", "mipro.starter", "--address", address, "start", str(typo)]
    done = subprocess.run(
        [*command, "--set", "mipro.batch_sise=16", "--job-id", job_id],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    refused = "Extra inputs are not permitted"
    assert f"prompt_learning.mipro.batch_sise: {refused} (did you mean `batch_size`?)" in done.stderr
    assert f"prompt_learning.mipro.tpe.gama: {refused} (did you mean `gamma`?)" in done.stderr
    with pytest.raises(RPCError):
        await temporal_env.client.get_workflow_handle(job_id).describe()
