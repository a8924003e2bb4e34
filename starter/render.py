"""Terminal output: live progress while a job runs, and the result once it is done.

On a terminal, rich tables and a live bar; otherwise (a pipe, a log file, CI) nothing is cut to a
terminal's width: `mipro list` writes tab-separated rows, `watch` one plain line per change.
"""

from __future__ import annotations

import asyncio
import json
import os
from contextlib import suppress

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError

from mipro.estimate import JobEstimate
from mipro.job_models import OptimizationResult
from mipro.job_models import Progress as JobProgress
from mipro.report import is_fallback_data
from mipro.starter import jobs
from mipro.starter.jobs import JobRow, JobSnapshot
from mipro.types import ChatMessage

PIPE_WIDTH = 200  # off a terminal rich would assume 80 columns and cut cells; $COLUMNS still wins


def _console() -> Console:
    found = Console()
    if found.is_terminal or os.environ.get("COLUMNS"):
        return found
    return Console(width=PIPE_WIDTH)


console = _console()


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def progress_detail(p: JobProgress, snap: JobSnapshot | None = None) -> str:
    """Rollouts, scores, spend, elapsed and ETA. With a snapshot, its clock-based times (elapsed since the
    job started; the ETA from unpaused time, frozen while paused)."""
    if snap is not None:
        elapsed, eta = snap.elapsed_seconds, snap.eta_seconds
    else:
        elapsed, eta = p.elapsed_seconds, None if p.paused else p.eta_seconds
    return (
        f"rollouts {p.rollouts_done} (errors {p.rollout_errors})  baseline {_fmt(p.baseline_score)}  "
        f"best mb {_fmt(p.best_minibatch_score)}  best val {_fmt(p.best_validation_score)}  "
        f"${p.spend_usd:.4f}  elapsed {duration(elapsed)}  eta {duration(eta)}"
    )


def progress_line(p: JobProgress, snap: JobSnapshot | None = None) -> str:
    return f"{p.phase:<12} trials {p.trials_done}/{p.trials_planned}  {progress_detail(p, snap)}"


def waiting_for_task_app(snap: JobSnapshot) -> bool:
    """The job is waiting out a task-app outage (pause-like; it resumes by itself when the app answers)."""
    return not snap.closed and snap.progress is not None and snap.progress.waiting_for_task_app


def status_label(snap: JobSnapshot) -> str:
    if snap.paused:
        return "PAUSED"
    return "WAITING" if waiting_for_task_app(snap) else snap.status


def errors_text(p: JobProgress) -> str:
    """`12 of 40 rollouts failed (connection: 12)`."""
    kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(p.errors_by_kind.items()))
    return f"{p.rollout_errors} of {p.rollouts_done} rollouts failed" + (f" ({kinds})" if kinds else "")


def status_line(snap: JobSnapshot) -> str:
    """One line with the job's true status first: `failed  Type: message`, `PAUSED  search trials ...`,
    `stopped_on_errors  done ... (max_consecutive_errors: 12 of 40 rollouts failed (...))`."""
    label = f"{status_label(snap):<10}"
    if snap.error is not None:
        phase = f" (in {snap.progress.phase})" if snap.progress else ""
        return f"{label} {snap.error.type}: {snap.error.message}{phase}"
    if snap.progress is None:
        return f"{label} (no progress: {snap.query_error or 'the job did not answer'})"
    line = f"{label} {progress_line(snap.progress, snap)}"
    if snap.status == "stopped_on_errors":
        return line + f"  ({snap.progress.stop_reason or 'stopped'}: {errors_text(snap.progress)})"
    if waiting_for_task_app(snap):
        return line + "  (the task app does not answer: waiting for it, resumes by itself)"
    return line + ("  (ETA frozen while paused)" if snap.paused else "")


def outcome_line(snap: JobSnapshot) -> str:
    """How a job ended, in one line, with what to run next."""
    if snap.error is not None:
        return f"job {snap.job_id} failed: {snap.error.type}: {snap.error.message}"
    p = snap.progress
    if snap.status == "stopped_on_errors" and p is not None:
        return (
            f"job {snap.job_id} stopped on errors ({p.stop_reason or 'rollouts kept failing'}): "
            f"{errors_text(p)}; no final test evaluation; best validation {_fmt(p.best_validation_score)} "
            f"after {p.trials_done} trials; `mipro result {snap.job_id}` for the best prompt found"
        )
    if snap.status in ("succeeded", "cancelled") and p is not None:
        return (
            f"job {snap.job_id} {snap.status}: best validation {_fmt(p.best_validation_score)} "
            f"(baseline {_fmt(p.baseline_score)} at bootstrap), {p.trials_done} trials, "
            f"{p.rollouts_done} rollouts, ${p.spend_usd:.4f}, {duration(snap.elapsed_seconds)}; "
            f"`mipro result {snap.job_id}` for the scores and the best prompt"
        )
    return f"job {snap.job_id} {snap.status} (Temporal status {snap.temporal_status})"


async def _next_snapshot(
    client: Client, job_id: str, clock: jobs.PauseClock, last: JobSnapshot
) -> JobSnapshot:
    try:
        return await jobs.snapshot(client, job_id, clock)
    except RPCError:  # a transient failure: keep showing the last state
        return last


async def watch(client: Client, job_id: str, interval: float = 0.5) -> JobSnapshot:
    """Show the job's progress until it ends; return its final state (JobNotFound if there is no job).

    The last frame is drawn from the ended job's own final progress, so it agrees with its result.
    """
    clock = jobs.PauseClock()
    snap = await jobs.snapshot(client, job_id, clock)
    done: asyncio.Future[object] = asyncio.ensure_future(jobs.handle(client, job_id).result())
    try:
        if console.is_terminal:
            snap = await _watch_live(client, job_id, clock, snap, done, interval)
        else:
            snap = await _watch_plain(client, job_id, clock, snap, done, interval)
    finally:
        if not done.done():
            done.cancel()
        with suppress(asyncio.CancelledError, WorkflowFailureError, RPCError):
            await done  # a failed job's error is in the snapshot
    return snap


async def _until_closed(
    client: Client,
    job_id: str,
    clock: jobs.PauseClock,
    snap: JobSnapshot,
    done: asyncio.Future[object],
    interval: float,
    show,  # noqa: ANN001 - Callable[[JobSnapshot], None]
) -> JobSnapshot:
    while True:
        show(snap)
        if snap.closed:
            return snap
        await asyncio.wait({done}, timeout=interval)
        snap = await _next_snapshot(client, job_id, clock, snap)
        if done.done() and not snap.closed:  # the result is in: read the closed job once more
            snap = await _next_snapshot(client, job_id, clock, snap)


async def _watch_live(
    client: Client,
    job_id: str,
    clock: jobs.PauseClock,
    snap: JobSnapshot,
    done: asyncio.Future[object],
    interval: float,
) -> JobSnapshot:
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[line]}"),
    ]
    with Progress(*columns, console=console, transient=False, auto_refresh=False) as bar:
        task: TaskID = bar.add_task("starting", total=None, line="")

        def show(s: JobSnapshot) -> None:
            p = s.progress
            if s.error is not None or p is None:
                line = status_line(s).split(None, 1)[1]
            else:
                line = progress_detail(p, s)
            bar.update(
                task,
                total=p.trials_planned if p else None,
                completed=p.trials_done if p else 0,
                description=status_label(s) if s.closed or s.paused else p.phase if p else s.status,
                line=line,
            )
            bar.refresh()

        return await _until_closed(client, job_id, clock, snap, done, interval, show)


async def _watch_plain(
    client: Client,
    job_id: str,
    clock: jobs.PauseClock,
    snap: JobSnapshot,
    done: asyncio.Future[object],
    interval: float,
) -> JobSnapshot:
    shown: list[tuple[object, ...]] = []

    def show(s: JobSnapshot) -> None:
        p = s.progress
        key = (s.status, s.closed, p.phase if p else None, p.trials_done if p else None)
        if s.closed or not shown or key != shown[-1]:  # a line per status, phase or trial change
            print(status_line(s), flush=True)
            shown.append(key)

    return await _until_closed(client, job_id, clock, snap, done, interval, show)


def best_prompt_panels(r: OptimizationResult) -> list[tuple[str, list[ChatMessage]]]:
    """The best prompt's messages to show: one panel, or one per stage of a pipeline."""
    title = f"best prompt (candidate {r.best.choice.key})"
    if len(r.best.stage_messages) <= 1:
        return [(title, r.best.messages)]
    return [(f"{title}, stage {stage}", messages) for stage, messages in r.best.stage_messages.items()]


def _message_preview(message: ChatMessage, max_lines: int = 8) -> str:
    if message.tool_calls:
        calls = ", ".join(
            f"{c['function']['name']}({c['function']['arguments']})" for c in message.tool_calls
        )
        return f"[{message.role}] tool call: {calls}"
    lines = (message.content or "").splitlines()
    more = f"\n… ({len(lines) - max_lines} more lines)" if len(lines) > max_lines else ""
    return f"[{message.role}]\n" + "\n".join(lines[:max_lines]) + more


def stopped_summary(r: OptimizationResult) -> str:
    """Why a stopped_on_errors job stopped: `stopped on errors (max_error_rate): 30 of 80 rollouts failed`."""
    kinds = ", ".join(f"{kind}: {n}" for kind, n in sorted(r.errors_by_kind.items()))
    return (
        f"stopped on errors ({r.stop_reason or 'rollouts kept failing'}): {r.rollout_errors} of "
        f"{r.total_rollouts} rollouts failed"
        + (f" ({kinds})" if kinds else "")
        + "; no final test evaluation"
    )


def print_result(r: OptimizationResult, ui_link: str) -> None:
    table = Table(
        title=f"MIPRO job {r.job_id}: {r.status}" + (f" ({r.stop_reason})" if r.stop_reason else "")
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("baseline test score", _fmt(r.baseline_test_score)),
        ("best test score", _fmt(r.best_test_score)),
        ("lift", _fmt(r.lift)),
        ("baseline validation score", _fmt(r.baseline_validation_score)),
        ("best validation score", _fmt(r.best_validation_score)),
        ("trials", str(r.total_trials)),
        ("candidates tried", str(len(r.attempted_candidates))),
        ("rollouts", f"{r.total_rollouts} ({r.rollout_errors} failed)"),
        ("policy tokens / cost", f"{r.costs.rollout.total_tokens} / ${r.costs.rollout.cost_usd:.4f}"),
        ("meta-model tokens / cost", f"{r.costs.proposal.total_tokens} / ${r.costs.proposal.cost_usd:.4f}"),
        *(
            [("judge tokens / cost", f"{r.costs.judge.total_tokens} / ${r.costs.judge.cost_usd:.4f}")]
            if r.costs.judge.calls
            else []
        ),
        ("total cost", f"${r.costs.total.cost_usd:.4f}"),
        ("wall time (workflow)", f"{r.elapsed_seconds:.1f}s"),
    ]
    if r.task_app_data_source:
        rows.append(("task app data", r.task_app_data_source))
    for name, value in rows:
        table.add_row(name, escape(value))
    console.print(table)
    if r.status == "stopped_on_errors" and not any(w.startswith("stopped on errors") for w in r.warnings):
        console.print(
            f"[bold red]{escape(stopped_summary(r))}[/]: the best prompt below is the best found before"
        )
    if is_fallback_data(r.task_app_data_source):
        console.print(
            "[bold yellow]warning:[/] the task app served its small FALLBACK data set, not the real one: "
            "the scores say little about the real task"
        )
    for warning in r.warnings:
        console.print(f"[bold yellow]warning:[/] {escape(warning)}")
    if r.simulated_llm:
        console.print(
            "[bold yellow]The LLM was SIMULATED[/] (mipro.simllm): scores and costs show the "
            "optimizer working, not the quality of a real model."
        )
    for title, messages in best_prompt_panels(r):
        console.print(Panel("\n\n".join(_message_preview(m) for m in messages), title=title, expand=False))
    console.print(f"Temporal UI: {ui_link}")


LIST_COLUMNS = ("job", "status", "temporal", "org", "best val", "trials", "spend", "started", "data")


def _list_cells(r: JobRow) -> list[str]:
    started = r.started_at.strftime("%Y-%m-%d %H:%M:%S") if r.started_at else "-"
    spend = "-" if r.spend_usd is None else f"${r.spend_usd:.4f}"
    trials = str(r.trials if r.trials is not None else "-")
    data = " ".join((r.data_source or "-").split())  # one cell: no tabs or newlines from the task app
    return [
        r.job_id,
        r.status,
        r.temporal_status,
        r.org or "-",
        _fmt(r.best_score),
        trials,
        spend,
        started,
        data,
    ]


def print_job_list(rows: list[JobRow], as_json: bool = False) -> None:
    """A table on a terminal; tab-separated rows (header first) otherwise; a JSON array with `as_json`."""
    if as_json:
        print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    if not console.is_terminal:
        print("\t".join(LIST_COLUMNS))
        for r in rows:
            print("\t".join(_list_cells(r)))
        return
    table = Table(title=f"{len(rows)} MIPRO jobs")
    table.add_column("job", no_wrap=True, min_width=19)
    for column in LIST_COLUMNS[1:]:
        table.add_column(column)
    for r in rows:
        table.add_row(*(escape(cell) for cell in _list_cells(r)))
    console.print(table)


def print_estimate(e: JobEstimate) -> None:
    table = Table(title="pre-run estimate (nothing started)")
    for column in ("", "low", "high"):
        table.add_column(column, justify="right")
    table.add_row("rollouts", f"{e.rollouts.low:,.0f}", f"{e.rollouts.high:,.0f}")
    table.add_row("policy LLM calls", f"{e.policy_calls.low:,.0f}", f"{e.policy_calls.high:,.0f}")
    table.add_row("meta-model calls", f"{e.meta_calls.low:,.0f}", f"{e.meta_calls.high:,.0f}")
    table.add_row("tokens", f"{e.tokens.low:,.0f}", f"{e.tokens.high:,.0f}")
    table.add_row("cost (USD)", f"${e.cost_usd.low:.4f}", f"${e.cost_usd.high:.4f}")
    console.print(table)
    if e.capped_by_budget:
        console.print(f"capped by: {', '.join(e.capped_by_budget)}")
    for line in e.assumptions:
        console.print(f"- {escape(line)}")
    for line in e.warnings:
        console.print(f"[bold yellow]warning:[/] {escape(line)}")
