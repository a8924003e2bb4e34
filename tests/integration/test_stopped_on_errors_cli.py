"""A job that stopped on errors is its own status everywhere a user looks (issue 14 point 1, the CLI and
API side): `mipro status` / `watch` / `result` say `stopped_on_errors` with what failed and exit 1,
`mipro list --status stopped_on_errors` finds it (and `--status succeeded` does not), the result table
shows the task app's data source and the simulated-LLM label, and the REST API reports the status, lists
it under that filter and serves its result. One real job: dev server, the API and its worker, the
simulated LLM, and the example banking77 app failing every online-pool seed while /health stays fine."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from temporalio.testing import WorkflowEnvironment

from mipro.config import apply_values, parse_config
from mipro.serving import BackgroundServer
from mipro.starter import jobs
from mipro.starter.cli import main as cli_main
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import Banking77Data
from tests.conftest import API_QUEUE, TASK_APP_KEY, api_config_body
from tests.integration.api_client import SMALL, api_client, create_job, tiny_pools, wait_listed

pytestmark = pytest.mark.integration
LOG_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}|\{\"event\")")


def cli_lines(text: str) -> str:
    """The CLI's own lines: the API's worker, in this process, logs to the same streams."""
    return "\n".join(line for line in text.splitlines() if not LOG_LINE.match(line))


async def cli(capsys: pytest.CaptureFixture[str], address: str, *args: str) -> tuple[int, str, str]:
    """The real CLI in this process (its own event loop, on a thread): exit code, stdout, stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        await asyncio.to_thread(cli_main, ["--address", address, *args])
    captured = capsys.readouterr()
    return int(info.value.code or 0), cli_lines(captured.out), cli_lines(captured.err)


async def test_a_job_stopped_on_errors_is_its_own_status_in_the_cli_and_the_api(
    temporal_env: WorkflowEnvironment,
    api_server: BackgroundServer,
    simllm: BackgroundServer,
    banking77_data: Banking77Data,
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = api_config_body("http://unused", simllm.url)
    pools = tiny_pools(body)
    others = {*pools["mipro.bootstrap_train_seeds"], *pools["mipro.val_seeds"], *pools["mipro.test_pool"]}
    failing = set(pools["mipro.online_pool"]) - others
    app = create_banking77(banking77_data, api_key=TASK_APP_KEY, fail_seeds=failing)
    address = temporal_env.client.service_client.config.target_host
    with BackgroundServer(app) as server:
        async with api_client(api_server) as http:
            overrides = {
                "mipro.rerun_delays_seconds": [0.2],
                "mipro.outage_poll_max_seconds": 1,
                "mipro.rollout_retries": 0,
                "termination.max_consecutive_errors": 10,
            }
            job = await create_job(http, api_config_body(server.url, simllm.url), overrides=overrides)
            job_id = job["job_id"]
            # and one that upserts no search attributes (a server without them): its result says how it ended
            plain = parse_config(
                apply_values(body, {**SMALL, **overrides, **pools, "task_app_url": server.url})
            )
            bare = await jobs.start_job(
                temporal_env.client, plain, task_queue=API_QUEUE, search_attributes_ready=False
            )
            result = await jobs.result(temporal_env.client, job_id)
            assert result.status == "stopped_on_errors", result.status
            assert (await jobs.result(temporal_env.client, bare.id)).status == "stopped_on_errors"

            detail = (await http.get(f"/jobs/{job_id}")).json()
            listed = await wait_listed(http, job_id, status="stopped_on_errors")
            succeeded = (await http.get("/jobs", params={"limit": 500, "status": "succeeded"})).json()
            served = await http.get(f"/jobs/{job_id}/result")

            status = await cli(capsys, address, "status", job_id)
            bare_status = await cli(capsys, address, "status", bare.id)
            as_json = await cli(capsys, address, "status", job_id, "--json")
            watched = await cli(capsys, address, "watch", job_id)
            shown = await cli(capsys, address, "result", job_id)
            only = await cli(capsys, address, "list", "--status", "stopped_on_errors", "--json")
            not_succeeded = await cli(capsys, address, "list", "--status", "succeeded", "--json")

    assert detail["status"] == "stopped_on_errors" and listed["status"] == "stopped_on_errors"
    assert job_id not in {j["job_id"] for j in succeeded["jobs"]}
    assert served.status_code == 200 and served.json()["status"] == "stopped_on_errors"
    assert served.json()["result"]["stop_reason"] == "max_consecutive_errors"

    code, out, _ = status
    assert code == 1 and out.startswith("stopped_on_errors "), out
    assert "max_consecutive_errors: " in out and "rollouts failed (http_5xx: " in out, out
    assert as_json[0] == 1 and json.loads(as_json[1])["status"] == "stopped_on_errors"
    assert bare_status[0] == 1 and bare_status[1].startswith("stopped_on_errors "), bare_status

    code, out, err = watched
    assert code == 1 and out.splitlines()[-1].startswith("stopped_on_errors"), out
    assert err.startswith(f"error: job {job_id} stopped on errors (max_consecutive_errors): "), err
    assert "no final test evaluation" in err and f"mipro result {job_id}" in err

    code, out, err = shown
    title = " ".join(out.split("┏")[0].split())  # the table's title, wrapped to the console's width
    assert code == 1 and title == f"MIPRO job {job_id}: stopped_on_errors (max_consecutive_errors)", out
    assert "task app data" in out and result.task_app_data_source, result.task_app_data_source
    assert result.task_app_data_source.split()[0] in out
    assert "The LLM was SIMULATED" in out and result.simulated_llm
    assert err.startswith(f"error: job {job_id} stopped on errors (max_consecutive_errors): "), err

    assert only[0] == 0 and job_id in {row["job_id"] for row in json.loads(only[1])}
    assert not_succeeded[0] == 0 and job_id not in {row["job_id"] for row in json.loads(not_succeeded[1])}
    row = next(r for r in json.loads(only[1]) if r["job_id"] == job_id)
    assert row["status"] == "stopped_on_errors" and row["data_source"] == result.task_app_data_source
