"""MiproWorkflow: the whole optimization as deterministic Temporal workflow code.

health check -> bootstrap (baseline score, demo pool, demo sets; baseline on validation) -> instruction
proposal -> iterations of TPE-suggested trials on paired minibatches, with promotions of the most promising
candidate to the validation seeds -> final test evaluation of the best and the baseline.

Each phase is a module of this package; the state and the steps they share are `job.Job`. No I/O, no wall
clock, no unseeded randomness: every random choice derives from `mipro.seed`, so the same config gives the
same result whether or not a worker died mid-run.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from mipro.activity_models import BATCH_DRAINING_SIGNAL, BatchDraining
    from mipro.job_models import (
        BestPrompt,
        CandidateSummary,
        Event,
        EventsQuery,
        MiproJobInput,
        OptimizationResult,
        Progress,
    )
    from mipro.metrics import Metric, job_metrics

from mipro.workflows.bootstrap import bootstrap, health_check
from mipro.workflows.final_evaluation import best_prompt, cancelled, finish
from mipro.workflows.job import Job
from mipro.workflows.proposal import propose
from mipro.workflows.search_iteration import search


@workflow.defn
class MiproWorkflow:
    @workflow.init
    def __init__(self, inp: MiproJobInput) -> None:
        self.job = Job(inp)

    @workflow.run
    async def run(self, inp: MiproJobInput) -> OptimizationResult:
        job, s = self.job, self.job.s
        try:
            if not inp.auto_start:
                await workflow.wait_condition(lambda: s.start_requested)
            if s.started_at is None:
                self._mark_started()
            if s.phase in ("starting", "health_check"):
                await health_check(job)
            if s.phase == "bootstrap":
                await bootstrap(job)
            if s.phase == "proposal":
                await propose(job)
            baseline_test = await search(job) if s.phase == "search" else None
            return await finish(job, baseline_test)
        except BaseException as exc:  # cancellation: a CancelledError, or an ActivityError around one
            if not is_cancelled_exception(exc):
                raise
            return cancelled(job)

    def _mark_started(self) -> None:
        job = self.job
        job.s.started_at = job.now()
        if not job.inp.auto_start:  # the REST API reads when a delayed job started from its memo
            workflow.upsert_memo({"started_at": job.s.started_at.isoformat()})
        job.emit(
            "mipro.job.started",
            "job started",
            {
                "num_iterations": job.m.num_iterations,
                "num_trials_per_iteration": job.m.num_evaluations_per_iteration,
            },
        )

    # ---- queries -----------------------------------------------------------------------------------
    @workflow.query
    def progress(self) -> Progress:
        return self.job.progress()

    @workflow.query
    def events(self, query: EventsQuery) -> list[Event]:
        return [e for e in self.job.s.events if e.seq > query.since_seq][: query.limit]

    @workflow.query
    def metrics(self) -> list[Metric]:
        s = self.job.s
        return job_metrics(s.trials, s.validations, s.spend)

    @workflow.query
    def candidates(self) -> list[CandidateSummary]:
        return self.job.summaries()

    @workflow.query
    def best(self) -> BestPrompt:
        return best_prompt(self.job)

    # ---- signals -----------------------------------------------------------------------------------
    @workflow.signal(name=BATCH_DRAINING_SIGNAL)
    def batch_draining(self, notice: BatchDraining) -> None:
        """From the evaluation activity: an iteration's batch drains (overlapped iterations)."""
        self.job.draining[notice.label] = notice

    # ---- updates: start, pause, resume -------------------------------------------------------------
    @workflow.update
    def start(self) -> Progress:
        """Start a job created with `auto_start = false`."""
        self.job.s.start_requested = True
        return self.job.progress()

    @start.validator
    def _validate_start(self) -> None:
        if self.job.inp.auto_start or self.job.s.start_requested:
            raise ValueError("job has already started")

    @workflow.update
    def pause(self) -> Progress:
        self.job.s.paused = True
        self.job.emit("mipro.job.paused", "paused: no new trial starts until resumed")
        self.job.upsert_search_attributes()
        return self.job.progress()

    @pause.validator
    def _validate_pause(self) -> None:
        job = self.job
        if not (job.inp.auto_start or job.s.start_requested):
            raise ValueError("job has not started: start it or cancel it")
        if job.s.paused:
            raise ValueError("job is already paused")
        if job.s.phase in ("final_eval", "done"):
            raise ValueError(f"job is in phase {job.s.phase}: nothing left to pause")

    @workflow.update
    def resume(self) -> Progress:
        self.job.s.paused = False
        self.job.emit("mipro.job.resumed", "resumed")
        self.job.upsert_search_attributes()
        return self.job.progress()

    @resume.validator
    def _validate_resume(self) -> None:
        if not self.job.s.paused:
            raise ValueError("job is not paused")
