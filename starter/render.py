"""Terminal output: live progress while a job runs, and the result once it is done."""

from __future__ import annotations

import asyncio

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import Client
from temporalio.service import RPCError

from mipro.estimate import JobEstimate
from mipro.job_models import OptimizationResult
from mipro.job_models import Progress as JobProgress
from mipro.types import ChatMessage
from starter import jobs
from starter.jobs import JobRow

console = Console()


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def progress_line(p: JobProgress) -> str:
    eta = f"{p.eta_seconds:.0f}s" if p.eta_seconds is not None else "-"
    return (
        f"{p.phase:<12} trials {p.trials_done}/{p.trials_planned}  rollouts {p.rollouts_done} "
        f"(errors {p.rollout_errors})  baseline {_fmt(p.baseline_score)}  "
        f"best mb {_fmt(p.best_minibatch_score)}"
        f"  best val {_fmt(p.best_validation_score)}  ${p.spend_usd:.4f}  eta {eta}"
    )


async def watch(client: Client, job_id: str, interval: float = 0.5) -> None:
    """Show a live progress bar until the job ends."""
    handle = client.get_workflow_handle(job_id)
    done = asyncio.ensure_future(handle.result())
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[line]}"),
    ]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("trials", total=None, line="starting")
        while not done.done():
            try:
                p = await jobs.progress(client, job_id)
                bar.update(
                    task,
                    total=p.trials_planned,
                    completed=p.trials_done,
                    description=p.phase,
                    line=progress_line(p).split("  ", 1)[1],
                )
            except RPCError:
                pass
            await asyncio.wait({done}, timeout=interval)
    done.exception()  # surface a failed job to the caller via handle.result() later


def _message_preview(message: ChatMessage, max_lines: int = 8) -> str:
    if message.tool_calls:
        calls = ", ".join(
            f"{c['function']['name']}({c['function']['arguments']})" for c in message.tool_calls
        )
        return f"[{message.role}] tool call: {calls}"
    lines = (message.content or "").splitlines()
    more = f"\n… ({len(lines) - max_lines} more lines)" if len(lines) > max_lines else ""
    return f"[{message.role}]\n" + "\n".join(lines[:max_lines]) + more


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
        ("total cost", f"${r.costs.total.cost_usd:.4f}"),
        ("wall time (workflow)", f"{r.elapsed_seconds:.1f}s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    for warning in r.warnings:
        console.print(f"[bold yellow]warning:[/] {escape(warning)}")
    if r.simulated_llm:
        console.print(
            "[bold yellow]The LLM was SIMULATED[/] (mipro.simllm): scores and costs show the "
            "optimizer working, not the quality of a real model."
        )
    prompt = "\n\n".join(_message_preview(m) for m in r.best.messages)
    console.print(Panel(prompt, title=f"best prompt (candidate {r.best.choice.key})", expand=False))
    console.print(f"Temporal UI: {ui_link}")


def print_job_list(rows: list[JobRow]) -> None:
    table = Table(title=f"{len(rows)} MIPRO jobs")
    table.add_column("job", no_wrap=True, min_width=19)
    for column in ("temporal", "status", "org", "best val", "trials", "spend", "started"):
        table.add_column(column)
    for r in rows:
        started = r.started_at.strftime("%Y-%m-%d %H:%M:%S") if r.started_at else "-"
        spend = "-" if r.spend_usd is None else f"${r.spend_usd:.4f}"
        table.add_row(
            r.job_id,
            r.temporal_status,
            r.status or "-",
            r.org or "-",
            _fmt(r.best_score),
            str(r.trials if r.trials is not None else "-"),
            spend,
            started,
        )
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
        console.print(f"- {line}")
