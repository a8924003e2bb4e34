"""A running job's state and the steps every phase shares: events, phase, termination, the pause gate,
accounting, compiling a choice, progress. Deterministic workflow code: no I/O, time from `Job.now()`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from mipro import search_attributes as sa
    from mipro.activity_models import BatchDraining, RolloutTarget
    from mipro.budget import budget_name, termination_reason
    from mipro.compile import compile_choice
    from mipro.config import JobConfig, PoolName
    from mipro.errors import FailureType
    from mipro.job_models import CandidateSummary, Event, JobState, MiproJobInput, Progress
    from mipro.plan import rollout_plan
    from mipro.results import candidate_summaries
    from mipro.search import baseline_choice
    from mipro.types import CandidateChoice, CompiledCandidate, SeedOutcome, Usage

A = TypeVar("A")
R = TypeVar("R")
MAX_EVENTS = 1000  # the event log keeps the newest events; it is carried across continue-as-new
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_attempts=6,
    non_retryable_error_types=[FailureType.AUTH, FailureType.HEALTH_CHECK],
)


class Job:
    """What one workflow run knows: the input, the carried state, and what is in flight right now."""

    def __init__(self, inp: MiproJobInput) -> None:
        self.inp = inp
        self.cfg = inp.config
        self.m = inp.config.mipro
        self.s = inp.state or JobState()
        self.stages = inp.config.known_stages()  # none until a baseline to be gathered is gathered
        self.plan = rollout_plan(inp.config)
        self.run_start_trials = len(self.s.trials)
        self.evaluations_in_flight = 0
        self.proposals_in_flight = 0
        self.reserved = Usage()  # budget allowances of the evaluations in flight
        # The rollout queue of the worker this run's batches are pinned to (overlapped iterations); None:
        # the job's shared rollout queue.
        self.pinned_rollout_queue: str | None = None
        self._after_local: tuple[datetime, datetime] | None = None  # (time before, workflow.now() after)
        # Batches that drain (overlapped iterations: one wave of rollouts left to start), by batch label:
        # their scores so far.
        self.draining: dict[str, BatchDraining] = {}

    def adopt_config(self, config: JobConfig) -> None:
        """Run on `config` from now on (and carry it to the next run): the gathered baseline prompt."""
        self.inp = self.inp.model_copy(update={"config": config})
        self.cfg = config
        self.stages = config.stages()

    def target(self, pool: PoolName) -> RolloutTarget:
        return RolloutTarget.from_config(self.cfg, pool)

    # ---- the clock ------------------------------------------------------------------------------------
    def now(self) -> datetime:
        """The workflow's time, the same live and on replay. That is `workflow.now()` (the start of the
        current workflow task, read from its history event), except for the rest of the activation in which
        a local activity's result arrived: there `workflow.now()` is the completion time the activity's
        marker records on replay but, live, the next task's start when the result reaches the workflow in
        a task of its own. That activation reads the time from before the local activity."""
        now = workflow.now()
        if self._after_local is not None and now == self._after_local[1]:
            return self._after_local[0]
        return now

    async def local_activity(self, fn: Callable[[A], Awaitable[R]], arg: A, **options: Any) -> R:
        """`workflow.execute_local_activity`, keeping `now()` where it was (see there)."""
        before = self.now()
        try:
            return await workflow.execute_local_activity(fn, arg, **options)
        finally:
            self._after_local = (before, workflow.now())

    # ---- candidates ------------------------------------------------------------------------------
    @property
    def baseline(self) -> CandidateChoice:
        return baseline_choice(len(self.stages))

    def compile(self, choice: CandidateChoice) -> CompiledCandidate:
        return compile_choice(self.stages, self.s.instructions, self.s.demo_sets, self.s.demo_pool, choice)

    def baseline_hash(self) -> str:
        return self.compile(self.baseline).content_hash

    def summaries(self) -> list[CandidateSummary]:
        return candidate_summaries(self.s, self.baseline_hash(), self.baseline.key)

    # ---- the gate, termination, accounting -------------------------------------------------------
    async def gate(self) -> None:
        """The pause gate in front of everything that spends: every evaluation (bootstrap, baselines,
        trials, promotions, the final test) and every proposal waits here while paused."""
        if self.s.paused:
            await workflow.wait_condition(lambda: not self.s.paused)

    def check_termination(self, planned: int = 0) -> bool:
        if self.s.stop_reason is None:
            reason = termination_reason(
                self.cfg.termination, self.s.spend, self.s.counters, self.elapsed(), planned_trials=planned
            )
            if reason:
                self.stop(reason)
        return self.s.stop_reason is not None

    def stop(self, reason: str) -> None:
        """Record why the job stops (the first reason wins) and say so once."""
        if self.s.stop_reason is not None:
            return
        self.s.stop_reason = reason
        self.emit("mipro.termination", f"stopping: {reason}", {"reason": reason}, level="warning")

    def account(self, outcomes: list[SeedOutcome]) -> None:
        for o in outcomes:
            # `usage` includes the judge's calls (zero without a judge: no change, no command, replay-safe)
            self.s.spend.add("rollout", o.policy_usage)
            self.s.spend.add("judge", o.judge_usage)
            self.s.counters.record(o.ok, o.error)
        if any(o.error == "budget" for o in outcomes):
            self.stop(budget_name(self.cfg.termination, self.s.spend))

    def cache(self, content_hash: str, outcomes: list[SeedOutcome]) -> None:
        cache = self.s.online_cache.setdefault(content_hash, {})
        for o in outcomes:
            if o.score is not None:
                cache[o.seed] = o.score

    def continue_as_new_due(self) -> bool:
        """This run's history grows large, and the search goes on (finishing is cheaper than a new run)."""
        trials_this_run = len(self.s.trials) - self.run_start_trials
        suggested = workflow.info().is_continue_as_new_suggested()
        if trials_this_run < self.m.continue_as_new_every_trials and not suggested:
            return False
        return self.s.iteration < self.m.num_iterations and self.s.stop_reason is None

    async def continue_as_new_if_due(self) -> None:
        """Start a fresh run carrying the state, before this run's history grows large."""
        if not self.continue_as_new_due():
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        self.emit(
            "mipro.continue_as_new",
            f"continuing as new run {self.s.runs + 1}",
            {"trials": len(self.s.trials), "history_events": workflow.info().get_current_history_length()},
        )
        self.s.runs += 1
        workflow.continue_as_new(self.inp.model_copy(update={"state": self.s}))

    # ---- events, phase, progress -----------------------------------------------------------------
    def emit(self, type_: str, message: str, data: dict[str, Any] | None = None, level: str = "info") -> None:
        self.s.events.append(
            Event(
                seq=self.s.next_seq,
                type=type_,
                level=level,
                message=message,
                data=data or {},
                created_at=self.now(),
            )
        )
        self.s.next_seq += 1
        if len(self.s.events) > MAX_EVENTS:
            del self.s.events[: len(self.s.events) - MAX_EVENTS]

    def set_phase(self, phase: str) -> None:
        self.s.phase = phase  # type: ignore[assignment]
        self.emit("prompt.learning.phase.changed", f"phase: {phase}", {"phase": phase})
        self.update_details()
        self.upsert_search_attributes()

    def elapsed(self) -> float:
        started = self.s.started_at or self.now()
        return (self.now() - started).total_seconds()

    def update_details(self) -> None:
        p = self.progress()
        best = f"{p.best_validation_score:.3f}" if p.best_validation_score is not None else "-"
        workflow.set_current_details(
            f"**{p.phase}** · trials {p.trials_done}/{p.trials_planned} · rollouts {p.rollouts_done} · "
            f"best val {best} · ${p.spend_usd:.4f}"
        )

    def upsert_search_attributes(self, status: str | None = None) -> None:
        if not self.inp.upsert_search_attributes:
            return
        best = self.s.validation.get(self.s.best_key or "")
        updates = [
            sa.STATUS.value_set(status or ("paused" if self.s.paused else "running")),
            sa.ORG.value_set(self.inp.org),
            sa.TRIALS.value_set(len(self.s.trials)),
            sa.SPEND_USD.value_set(round(self.s.spend.total.cost_usd, 6)),
        ]
        if best is not None:
            updates.append(sa.BEST_SCORE.value_set(best))
        workflow.upsert_search_attributes(updates)

    def progress(self) -> Progress:
        mb = [c.minibatch_score for c in self.summaries() if c.minibatch_score is not None]
        planned = self.plan.trials
        done = len(self.s.trials)
        elapsed = self.elapsed() if self.s.started_at else 0.0
        eta = elapsed / done * (planned - done) if done and self.s.phase == "search" else None
        return Progress(
            job_id=self.inp.job_id,
            phase=self.s.phase,
            iteration=self.s.iteration,
            num_iterations=self.m.num_iterations,
            trials_done=done,
            trials_planned=planned,
            rollouts_done=self.s.counters.rollouts,
            rollout_errors=self.s.counters.rollout_errors,
            errors_by_kind=self.s.counters.errors_by_kind,
            baseline_score=self.s.baseline_bootstrap_score,
            best_minibatch_score=max(mb) if mb else None,
            best_validation_score=self.s.validation.get(self.s.best_key or ""),
            spend_usd=self.s.spend.total.cost_usd,
            spend_by_category={
                "rollout": self.s.spend.rollout.cost_usd,
                "proposal": self.s.spend.proposal.cost_usd,
                "judge": self.s.spend.judge.cost_usd,
            },
            tokens=self.s.spend.total.total_tokens,
            elapsed_seconds=elapsed,
            eta_seconds=eta,
            started_at=self.s.started_at,
            paused=self.s.paused,
            waiting_for_task_app=self.s.waiting_for_task_app,
            evaluations_in_flight=self.evaluations_in_flight,
            proposals_in_flight=self.proposals_in_flight,
            stop_reason=self.s.stop_reason,
        )
