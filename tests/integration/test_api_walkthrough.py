"""The README's curl walk-through, run verbatim against the real API, dev server, worker and task app."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil

import pytest

from mipro.serving import BackgroundServer
from tests.conftest import ORG_A_KEY, REPO
from tests.integration.api_client import BASE

pytestmark = pytest.mark.integration


def walkthrough() -> str:
    readme = (REPO / "README.md").read_text()
    block = re.search(
        r"<!-- walkthrough:start -->\n```bash\n(.*?)```\n<!-- walkthrough:end -->", readme, re.S
    )
    assert block, "README.md lost its walk-through block"
    return block.group(1)


async def test_the_readme_walkthrough_runs(
    api_server: BackgroundServer, simllm: BackgroundServer, task_app: BackgroundServer
) -> None:
    missing = [tool for tool in ("curl", "jq", "python3") if shutil.which(tool) is None]
    assert not missing, f"the walk-through needs {missing}: install them (apt-get install curl jq)"
    env = {
        **os.environ,
        "API": api_server.url + BASE,
        "KEY": ORG_A_KEY,
        "TASK_APP_URL": task_app.url,
        "LLM_URL": f"{simllm.url}/v1",
    }
    proc = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", walkthrough(), cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=600)
    text = out.decode()
    assert proc.returncode == 0, f"exit {proc.returncode}\n{text}\n{err.decode()}"
    lines = text.splitlines()
    assert re.fullmatch(r"job pl_[0-9a-f]{16}", lines[0])
    assert lines[1:4] == ["paused", "409", "running"]
    streamed = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    counts = {name: streamed.count(name) for name in streamed}
    assert streamed[-2:] == ["mipro.job.completed", "end"]
    assert counts.get("mipro.job.completed") == 1 and counts.get("end") == 1
    assert counts.get("mipro.trial.complete") == 9 and counts.get("mipro.job.paused") == 1
    summary_start = lines.index("{")
    summary = json.loads("\n".join(lines[summary_start : lines.index("}", summary_start) + 1]))
    assert summary["status"] == "succeeded" and summary["simulated_llm"] is True
    assert isinstance(summary["best"], float) and isinstance(summary["baseline"], float)
    assert any('"name":"validation.best_score"' in line for line in lines)
