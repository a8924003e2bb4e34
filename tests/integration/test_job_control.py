"""Job control and observability: pause/resume, cancel mid-rollout, the event log, search attributes, CLI."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from mipro.job_models import EventsQuery, OptimizationResult
from mipro.minibatches import minibatch_blocks
from mipro.serving import BackgroundServer
from mipro.simllm.app import create_app as create_simllm
from mipro.simllm.settings import SimLLMSettings
from mipro.starter import jobs, render
from mipro.starter.cli import main as cli_main
from mipro.starter.local_stack import run_stack
from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import Banking77Data
from mipro.worker import WorkerOptions, running_worker
from mipro.workflows.mipro_workflow import MiproWorkflow
from tests.conftest import REPO, SMALL_JOB, TASK_APP_KEY, job_config
from tests.integration.test_durability import comparable


async def poll_progress(client: Client, job_id: str, until, what: str, attempts: int = 600):  # noqa: ANN001
    for _ in range(attempts):
        progress = await jobs.progress(client, job_id)
        if until(progress):
            return progress
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def cli(capsys: pytest.CaptureFixture[str], address: str, *args: str) -> tuple[int, str, str]:
    """Run the real CLI against the dev server: (exit code, stdout, stderr).

    The CLI runs its own event loop; a thread keeps this loop (and its worker) serving queries.
    """
    with pytest.raises(SystemExit) as info:
        await asyncio.to_thread(cli_main, ["--address", address, *args])
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out, captured.err


def address_of(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


async def assert_refused(update: Coroutine[Any, Any, Any], reason: str) -> None:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await update
    assert info.value.cause is not None and reason in str(info.value.cause)


async def test_pause_stops_new_trials_and_resume_gives_the_same_result(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    task_app: BackgroundServer,
    task_queue: str,
    reference_result: OptimizationResult,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Also the CLI on a paused job (PAUSED, an ETA from unpaused time, elapsed from the job's start) and
    `watch` to the end (its last frame is the job's final progress, it exits 0 with the outcome)."""
    client, address = temporal_env.client, address_of(temporal_env)
    config = job_config(task_app.url, simllm.url, SMALL_JOB)
    async with running_worker(client, WorkerOptions(task_queue=task_queue)):
        handle = await jobs.start_job(client, config, task_queue=task_queue)
        await poll_progress(client, handle.id, lambda p: p.trials_done >= 2, "two trials")
        paused = await handle.execute_update(MiproWorkflow.pause)
        assert paused.paused
        await assert_refused(handle.execute_update(MiproWorkflow.pause), "already paused")
        settled = await poll_progress(
            client, handle.id, lambda p: p.evaluations_in_flight == 0, "in-flight evaluations"
        )
        for _ in range(40):  # a paused job starts nothing: 40 consecutive observations agree
            now = await jobs.progress(client, handle.id)
            assert (now.trials_done, now.rollouts_done, now.spend_usd) == (
                settled.trials_done,
                settled.rollouts_done,
                settled.spend_usd,
            )
            assert now.paused and now.evaluations_in_flight == 0
            await asyncio.sleep(0.05)
        assert settled.trials_done < settled.trials_planned
        code, line, _ = await cli(capsys, address, "status", handle.id)
        assert (
            code == 0 and line.startswith("PAUSED ") and line.rstrip().endswith("(ETA frozen while paused)")
        )
        before = datetime.now(UTC)
        code, out, _ = await cli(capsys, address, "status", handle.id, "--json")
        shown = json.loads(out)
        paused_at = next(
            e.created_at
            for e in await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))
            if e.type == "mipro.job.paused"
        )
        assert settled.started_at is not None
        running = (paused_at - settled.started_at).total_seconds()  # the pause is not counted
        done, planned = settled.trials_done, settled.trials_planned
        assert shown["status"] == "paused" and shown["paused"] is True
        assert shown["eta_seconds"] == pytest.approx(running / done * (planned - done), abs=0.01)
        assert shown["elapsed_seconds"] >= (before - settled.started_at).total_seconds()
        await handle.execute_update(MiproWorkflow.resume)
        await assert_refused(handle.execute_update(MiproWorkflow.resume), "not paused")
        code, out, _ = await cli(capsys, address, "watch", handle.id)
        result = await handle.result()
        *_, last_frame, outcome = out.splitlines()
        assert code == 0 and outcome.startswith(f"job {handle.id} succeeded: best validation")
        assert last_frame.startswith("succeeded  done ")
        assert f"trials {result.total_trials}/" in last_frame
        assert f"rollouts {result.total_rollouts} (errors {result.rollout_errors})" in last_frame
        assert f"elapsed {render.duration(result.elapsed_seconds)} " in last_frame
        with pytest.raises(RPCError):
            await handle.execute_update(MiproWorkflow.pause)  # a finished job cannot be paused
        events = await handle.query(MiproWorkflow.events, EventsQuery(limit=5000))

    assert comparable(result) == comparable(reference_result)
    assert [e.type for e in events].count("mipro.job.paused") == 1


@pytest.mark.parametrize("overlap", [False, True], ids=["", "overlapped"])
async def test_cancel_mid_rollout_cancels_in_flight_work_and_keeps_the_best(
    temporal_env: WorkflowEnvironment,
    banking77_data: Banking77Data,
    task_queue: str,
    capsys: pytest.CaptureFixture[str],
    overlap: bool,
) -> None:
    m = job_config("http://unused", "http://unused").mipro
    blocks = minibatch_blocks(m.online_pool[:32], batch_size=8, seed=m.seed)
    # The trials of iteration 1 hang until cancelled; overlapped, those of iteration 2 (iteration 1 starts
    # beside iteration 0, and its hung rollouts could hold the slots before 0 has landed).
    hang = set(blocks[2 if overlap else 1])
    app = create_banking77(banking77_data, api_key=TASK_APP_KEY, hang_seeds=hang)
    with BackgroundServer(create_simllm(SimLLMSettings())) as llm, BackgroundServer(app) as server:
        overrides = [
            f"mipro.bootstrap_train_seeds={m.bootstrap_train_seeds[:8]}",
            f"mipro.val_seeds={m.val_seeds[:8]}",
            f"mipro.online_pool={m.online_pool[:32]}",
            f"mipro.test_pool={m.test_pool[:8]}",
            "mipro.batch_size=8",
            "mipro.max_instructions=3",
            "mipro.num_iterations=20",
            f"mipro.overlap_iterations={str(overlap).lower()}",
        ]
        config = job_config(server.url, llm.url, overrides)
        client = temporal_env.client
        async with running_worker(client, WorkerOptions(task_queue=task_queue)):
            handle = await jobs.start_job(client, config, task_queue=task_queue)
            await poll_progress(
                client,
                handle.id,
                lambda p: bool(hang & app.state.stats.seeds) and p.trials_done > 0,
                "a hung rollout after a landed iteration",
            )
            await handle.cancel()
            result = await handle.result()
            code, out, _ = await cli(capsys, address_of(temporal_env), "watch", handle.id)
            assert code == 1 and out.splitlines()[-1].startswith(f"job {handle.id} cancelled: ")
            for _ in range(400):
                if app.state.stats.cancelled > 0:
                    break
                await asyncio.sleep(0.05)

    assert result.status == "cancelled" and result.stop_reason == "cancelled"
    assert app.state.stats.cancelled > 0, "the task app saw its in-flight rollouts cancelled"
    assert 3 <= result.total_trials < 20 * 3
    assert result.best_validation_score is not None
    # The best is the last promoted candidate (promotion weighs minibatch evidence too, so it need not have
    # the highest validation score), or the baseline if none was promoted.
    promoted = [v for v in result.validations if v.incumbent]
    kept = promoted[-1].score if promoted else result.baseline_validation_score
    assert result.best_validation_score == kept
    assert result.best.messages and result.best_test_score is None


async def test_events_are_ordered_gap_free_and_pageable(
    temporal_env: WorkflowEnvironment, reference_handle_id: str
) -> None:
    handle = temporal_env.client.get_workflow_handle_for(MiproWorkflow.run, reference_handle_id)
    everything = await handle.query(MiproWorkflow.events, EventsQuery(since_seq=0, limit=5000))
    seqs = [e.seq for e in everything]
    assert seqs == list(range(1, len(seqs) + 1))
    assert everything[0].type == "mipro.job.started" and everything[-1].type == "mipro.job.completed"
    pages, since = [], 0
    while page := await handle.query(MiproWorkflow.events, EventsQuery(since_seq=since, limit=7)):
        assert len(page) <= 7
        pages += page
        since = page[-1].seq
    assert pages == everything
    rest = await handle.query(MiproWorkflow.events, EventsQuery(since_seq=10))
    assert rest == everything[10:]
    types = {e.type for e in everything}
    for expected in (
        "mipro.bootstrap.progress",
        "mipro.instruction.proposed",
        "mipro.trial.started",
        "mipro.trial.complete",
        "mipro.fulleval.complete",
        "mipro.new_incumbent",
    ):
        assert expected in types


async def test_search_attributes_find_the_job(
    temporal_env: WorkflowEnvironment, reference_result: OptimizationResult, reference_handle_id: str
) -> None:
    best = reference_result.best_validation_score
    query = f"MiproStatus = 'succeeded' AND MiproBestScore >= {best - 1e-9} AND MiproTrials = 12"
    for _ in range(100):
        found = [wf.id async for wf in temporal_env.client.list_workflows(query)]
        if reference_handle_id in found:
            break
        await asyncio.sleep(0.1)
    assert reference_handle_id in found
    rows = await jobs.list_jobs(temporal_env.client, status="succeeded")
    row = next(r for r in rows if r.job_id == reference_handle_id)
    assert (
        row.trials == 12
        and row.org == "default"
        and row.spend_usd == pytest.approx(reference_result.costs.total.cost_usd, abs=1e-6)
    )
    description = await temporal_env.client.get_workflow_handle(reference_handle_id).describe()
    summary = await description.static_summary()
    details = await description.static_details()
    assert summary and "banking77" in summary
    assert details and "**pools**" in details


async def test_cli_status_result_and_list(
    temporal_env: WorkflowEnvironment,
    reference_handle_id: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    address = temporal_env.client.service_client.config.target_host

    async def run(*args: str) -> str:
        # The CLI runs its own event loop; a thread keeps this loop (and its worker) serving queries.
        with pytest.raises(SystemExit) as info:
            await asyncio.to_thread(cli_main, ["--address", address, *args])
        assert info.value.code == 0
        return capsys.readouterr().out

    status = json.loads(await run("status", reference_handle_id, "--json"))
    assert status["phase"] == "done" and status["trials_done"] == 12
    result = json.loads(await run("result", reference_handle_id, "--json"))
    assert result["status"] == "succeeded" and result["simulated_llm"] is True
    assert reference_handle_id in await run("list", "--status", "succeeded")
    report = tmp_path / "report.html"
    await run("report", reference_handle_id, "--out", str(report))
    html = report.read_text()
    assert reference_handle_id in html and html.count("<svg") == 4 and "SIMULATED" in html


async def test_cli_tells_the_truth_about_a_failed_job(
    temporal_env: WorkflowEnvironment,
    simllm: BackgroundServer,
    task_queue: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A job whose task app is unreachable fails at once: every command says `failed` with its error type
    (once) and message in one line, exits 1, and the listing never says running (issue 12, point 1)."""
    client, address = temporal_env.client, address_of(temporal_env)
    config = job_config("http://127.0.0.1:1", simllm.url)
    async with running_worker(client, WorkerOptions(task_queue=task_queue)):
        handle = await jobs.start_job(client, config, task_queue=task_queue)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        error = "TaskAppHealthCheckFailed: task app at http://127.0.0.1:1 is unreachable"

        code, out, _ = await cli(capsys, address, "status", handle.id)
        assert code == 1 and out.startswith("failed ") and error in out
        assert out.count("\n") == 1 and out.count("TaskAppHealthCheckFailed") == 1
        code, out, _ = await cli(capsys, address, "status", handle.id, "--json")
        shown = json.loads(out)
        assert code == 1 and shown["status"] == "failed" and shown["temporal_status"] == "FAILED"
        assert shown["error"]["type"] == "TaskAppHealthCheckFailed" and shown["phase"] == "health_check"
        assert shown["error"]["message"].startswith("task app at http://127.0.0.1:1 is unreachable")

        code, out, err = await cli(capsys, address, "watch", handle.id)
        assert (
            code == 1
            and out.startswith("failed ")
            and err.startswith(f"error: job {handle.id} failed: {error}")
        )
        for command in (["result", handle.id], ["report", handle.id, "--out", str(tmp_path / "r.html")]):
            code, out, err = await cli(capsys, address, *command)
            assert code == 1 and out == "" and err.startswith(f"error: job {handle.id} failed: {error}")
            assert err.count("\n") == 1 and "Traceback" not in err
        assert not (tmp_path / "r.html").exists()
        code, _, err = await cli(capsys, address, "--debug", "result", handle.id)
        assert code == 1 and "Traceback" in err and err.rstrip().splitlines()[-1].startswith("error: job")
        code, _, err = await cli(capsys, address, "cancel", handle.id)
        assert code == 1 and err == f"error: cannot cancel job {handle.id}: it has finished (failed)\n"

        for _ in range(100):  # visibility is eventually consistent
            if any(r.job_id == handle.id for r in await jobs.list_jobs(client, status="failed")):
                break
            await asyncio.sleep(0.1)
        code, out, _ = await cli(capsys, address, "list", "--status", "failed")
        row = next(line for line in out.splitlines() if line.startswith(handle.id))
        assert code == 0 and row.split("\t")[1:3] == ["failed", "FAILED"]  # whole cells off a terminal
        code, out, _ = await cli(capsys, address, "list", "--status", "running")
        assert handle.id not in out
        code, out, _ = await cli(capsys, address, "list", "--json")
        assert next(r for r in json.loads(out) if r["job_id"] == handle.id)["status"] == "failed"


async def test_cli_on_an_unknown_job_is_one_line(
    temporal_env: WorkflowEnvironment, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    address = address_of(temporal_env)
    expected = f"error: no job pl_doesnotexist (Temporal namespace default at {address})\n"
    for command in (
        ["status", "pl_doesnotexist"],
        ["status", "pl_doesnotexist", "--json"],
        ["result", "pl_doesnotexist"],
        ["report", "pl_doesnotexist", "--out", str(tmp_path / "r.html")],
        ["watch", "pl_doesnotexist"],
        ["pause", "pl_doesnotexist"],
        ["resume", "pl_doesnotexist"],
        ["cancel", "pl_doesnotexist"],
    ):
        code, out, err = await cli(capsys, address, *command)
        assert (code, out, err) == (1, "", expected), command


async def test_mipro_stack_runs_a_job_with_one_key(
    temporal_env: WorkflowEnvironment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mipro stack` (here on the test dev server, free ports) generates one task-app key that its app and
    worker share; the printed `mipro start` line runs a job on it, and a dry run measures its prompt."""
    address = address_of(temporal_env)
    monkeypatch.delenv("ENVIRONMENT_API_KEY")  # restored after the test
    ready, stop = asyncio.Event(), asyncio.Event()
    port = int(address.rsplit(":", 1)[1])
    stack = asyncio.create_task(run_stack("banking77", port, llm_port=0, app_port=0, ready=ready, stop=stop))
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({stack, waiting}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    assert ready.is_set(), stack.exception() if stack.done() else "the stack did not start in 60 s"
    try:
        printed = capsys.readouterr().out
        assert "(generated;" in printed and "already running: reused" in printed
        start_line = next(line for line in printed.splitlines() if line.startswith("stack ready;"))
        sets = re.findall(r"--set '([^']+)'", start_line)
        assert [s.split("=", 1)[0] for s in sets] == [
            "task_app_url",
            "policy.inference_url",
            "mipro.meta.inference_url",
        ]
        m = job_config("http://unused", "http://unused").mipro
        small = [
            f"mipro.bootstrap_train_seeds={m.bootstrap_train_seeds[:8]}",
            f"mipro.online_pool={m.online_pool[:16]}",
            f"mipro.val_seeds={m.val_seeds[:8]}",
            f"mipro.test_pool={m.test_pool[:8]}",
            "mipro.batch_size=8",
            "mipro.num_iterations=2",
            "mipro.num_evaluations_per_iteration=2",
            "mipro.max_instructions=3",
        ]
        overrides = [arg for s in [*sets, *small] for arg in ("--set", s)]
        config = str(REPO / "configs" / "banking77.toml")
        code, out, _ = await cli(capsys, address, "start", config, *overrides, "--dry-run")
        assert code == 0 and "prompt sizes from one baseline rollout of seed" in out
        assert "task app data: dir:" in out and "not measured" not in out
        code, out, err = await cli(capsys, address, "start", config, *overrides, "--watch")
        assert code == 0, err
        assert "succeeded" in out.splitlines()[-1] and "SIMULATED" in out
    finally:
        stop.set()
        await stack
