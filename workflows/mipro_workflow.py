"""MiproWorkflow: the whole optimization loop as deterministic Temporal workflow code.

health check -> bootstrap (baseline score, demo pool, demo sets; baseline on validation) -> instruction
proposal -> iterations of TPE-suggested trials on paired minibatches -> promotion of the most promising
candidate to the validation seeds -> final test evaluation of the best and the baseline.

No I/O, no wall clock, no unseeded randomness here: every random choice derives from `mipro.seed`, so the
same config gives the same result whether or not a worker died mid-run. Activities are called by name.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from mipro import search_attributes as sa
    from mipro.activity_models import (
        EvaluateInput,
        EvaluateOutput,
        HealthCheckInput,
        ProposeInput,
        ProposeOutput,
        RolloutTarget,
        SuggestInput,
        SuggestOutput,
        TaskAppInfo,
    )
    from mipro.budget import (
        SAFETY,
        budget_name,
        remaining_budget,
        rollouts_that_fit,
        scaled,
        termination_reason,
    )
    from mipro.compile import render_ready_messages
    from mipro.demos import build_demo_sets
    from mipro.errors import FailureType
    from mipro.job_models import (
        BestPrompt,
        CandidateSummary,
        Event,
        EventsQuery,
        JobState,
        MiproJobInput,
        OptimizationResult,
        Progress,
        TrialRecord,
        ValidationRecord,
    )
    from mipro.metrics import Metric, job_metrics
    from mipro.minibatches import minibatch_blocks
    from mipro.proposer.examples import answer_text
    from mipro.results import candidate_summaries, instruction_scores, lift_stats, mean
    from mipro.types import (
        CandidateChoice,
        ChatMessage,
        CompiledCandidate,
        SeedOutcome,
        StagePrompt,
        StageSpec,
        Usage,
    )

FIRST_ITERATION_PATCH = "informative-first-iteration"  # runs recorded before it used the TPE from the start
REEVALUATE_PATCH = "reevaluate-leader"  # runs recorded before it never ran a candidate twice
MAX_EVENTS = 1000  # the event log keeps the newest events; it is carried across continue-as-new
MAX_PROPOSER_EXAMPLES = 30  # demos shown to the meta-model per proposal
MAX_FAILED_EXAMPLES = 5  # low-scoring baseline rollouts kept for the proposer when no demo was bootstrapped
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_attempts=6,
    non_retryable_error_types=[FailureType.AUTH, FailureType.HEALTH_CHECK],
)


@workflow.defn
class MiproWorkflow:
    @workflow.init
    def __init__(self, inp: MiproJobInput) -> None:
        self.inp = inp
        self.cfg = inp.config
        self.m = inp.config.mipro
        self.s = inp.state or JobState()
        self.target = RolloutTarget.from_config(inp.config)
        self.stages = inp.config.stages()
        self.run_start_trials = len(self.s.trials)
        self.evaluations_in_flight = 0
        self.proposals_in_flight = 0
        self.reserved = Usage()  # budget allowances of the evaluations in flight

    # ---- run -------------------------------------------------------------------------------------
    @workflow.run
    async def run(self, inp: MiproJobInput) -> OptimizationResult:
        try:
            if not self.inp.auto_start:
                await workflow.wait_condition(lambda: self.s.start_requested)
            if self.s.started_at is None:
                self._mark_started()
            if self.s.phase in ("starting", "health_check"):
                await self._health_check()
            if self.s.phase == "bootstrap":
                await self._bootstrap()
            if self.s.phase == "proposal":
                await self._propose()
            if self.s.phase == "search":
                await self._search()
            return await self._finish("succeeded")
        except BaseException as exc:  # cancellation: a CancelledError, or an ActivityError around one
            if not is_cancelled_exception(exc):
                raise
            return self._cancelled()

    def _mark_started(self) -> None:
        self.s.started_at = workflow.now()
        if not self.inp.auto_start:  # the REST API reads when a delayed job started from its memo
            workflow.upsert_memo({"started_at": self.s.started_at.isoformat()})
        self._emit(
            "mipro.job.started",
            "job started",
            {
                "num_iterations": self.m.num_iterations,
                "num_trials_per_iteration": self.m.num_evaluations_per_iteration,
            },
        )

    def _cancelled(self) -> OptimizationResult:
        self.s.stop_reason = "cancelled"
        self._emit(
            "mipro.job.cancelled", "cancelled: returning the best candidate found so far", level="warning"
        )
        return self._result("cancelled", test_scores=(None, None))

    # ---- phases ----------------------------------------------------------------------------------
    async def _health_check(self) -> None:
        self._set_phase("health_check")
        try:
            info: TaskAppInfo = await workflow.execute_activity(
                "check_task_app",
                HealthCheckInput(
                    task_app_url=self.cfg.task_app_url,
                    task_app_api_key_env=self.cfg.task_app_api_key_env,
                    seed_pools={
                        "bootstrap_train_seeds": self.m.bootstrap_train_seeds,
                        "online_pool": self.m.online_pool,
                        "val_seeds": self.m.val_seeds,
                        "test_pool": self.m.test_pool,
                    },
                    split=str(self.cfg.env_config.get("split") or "") or None,
                ),
                result_type=TaskAppInfo,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(
                    maximum_attempts=3, non_retryable_error_types=[FailureType.HEALTH_CHECK]
                ),
                summary=f"health check of {self.cfg.task_app_url}",
            )
        except ActivityError as err:
            message = str(err.cause) if err.cause else str(err)
            raise ApplicationError(message, type=FailureType.HEALTH_CHECK, non_retryable=True) from None
        self.s.task_description = self.m.task_description or _describe(
            info, self.stages[0].baseline_instruction
        )
        self._set_phase("bootstrap")

    async def _bootstrap(self) -> None:
        baseline = self._compile(self._baseline_choice())
        boot, val = await asyncio.gather(
            self._evaluate("bootstrap", baseline, self.m.bootstrap_train_seeds, capture=True, sharing=2),
            self._evaluate("baseline-val", baseline, self.m.val_seeds, sharing=2),
        )
        self._fail_unless_bootstrapped(boot)
        self._account(boot.outcomes)
        self._account(val.outcomes)
        measured = boot.outcomes + val.outcomes
        if measured:
            total = Usage()
            for outcome in measured:
                total = total.plus(outcome.usage)
            self.s.rollout_estimate = Usage(
                calls=1,
                prompt_tokens=total.prompt_tokens // len(measured),
                completion_tokens=total.completion_tokens // len(measured),
                cost_usd=total.cost_usd / len(measured),
            )
        scores = [o.score for o in boot.outcomes if o.score is not None]
        self.s.baseline_bootstrap_score = mean(scores)
        key = self._baseline_choice().key
        self.s.validation[key] = mean([o.score for o in val.outcomes if o.score is not None]) or 0.0
        self.s.best_key = key
        good = [
            o.example
            for o in boot.outcomes
            if o.example is not None and (o.score or 0.0) >= self.m.few_shot_score_threshold
        ]
        failed = [
            o.example
            for o in boot.outcomes
            if o.example is not None and (o.score or 0.0) < self.m.few_shot_score_threshold
        ]
        for i, stage in enumerate(self.stages):
            pool = [e for e in good if e.stage_id == stage.stage_id]
            self.s.demo_pool.append(pool)
            self.s.failed_examples.append(
                [] if pool else [e for e in failed if e.stage_id == stage.stage_id][:MAX_FAILED_EXAMPLES]
            )
            self.s.demo_sets.append(
                build_demo_sets(
                    pool, self.m.max_demo_set_size, self.m.max_demo_sets, seed=self.m.seed * 31 + i
                )
            )
        self._emit(
            "mipro.bootstrap.progress",
            f"bootstrap: baseline {self.s.baseline_bootstrap_score}, {len(good)} demos",
            {
                "baseline_score": self.s.baseline_bootstrap_score,
                "baseline_validation_score": self.s.validation[key],
                "demos": len(good),
                "demo_sets": [len(d) for d in self.s.demo_sets],
            },
        )
        if not good:
            self._warn_no_demos(boot)
        self._set_phase("proposal")

    def _warn_no_demos(self, boot: EvaluateOutput) -> None:
        """Say, in a warning event and in the result, that no baseline rollout was good enough for a demo."""
        threshold = self.m.few_shot_score_threshold
        scores = [o.score for o in boot.outcomes if o.score is not None]
        errors: dict[str, int] = {}
        for o in boot.outcomes:
            if o.error:
                errors[o.error] = errors.get(o.error, 0) + 1
        answers = list(
            dict.fromkeys(answer_text(o.example.answer)[:80] for o in boot.outcomes if o.example is not None)
        )[:3]
        if not scores:
            message = (
                f"no rollout reached few_shot_score_threshold ({threshold}): every bootstrap rollout failed "
                f"({', '.join(f'{k}: {n}' for k, n in sorted(errors.items())) or 'no rollouts'}), so no demo "
                "was bootstrapped: check the task app and the policy model"
            )
        else:
            lower = " or lower few_shot_score_threshold" if max(scores) > 0 else ""
            shown = ", ".join(repr(a) for a in answers) or "none captured"
            message = (
                f"no rollout reached few_shot_score_threshold ({threshold}): the baseline scored "
                f"{mean(scores):.3f} on {len(scores)} bootstrap seeds (best {max(scores):.3f}), so no demo "
                "was bootstrapped: check the answer format the task app parses against what the model "
                f"answers (e.g. {shown}){lower}. Instructions are proposed from the task description and the "
                "failed answers."
            )
        self.s.warnings.append(message)
        self._emit(
            "mipro.bootstrap.warning",
            message,
            {
                "baseline_score": self.s.baseline_bootstrap_score,
                "few_shot_score_threshold": threshold,
                "best_score": max(scores) if scores else None,
                "answers": answers,
                "errors_by_kind": errors,
            },
            level="warning",
        )

    def _fail_unless_bootstrapped(self, boot: EvaluateOutput) -> None:
        """Errors that no amount of searching can fix end the job here, with a failure that says so."""
        if boot.skipped_for_budget or (boot.outcomes and all(o.error == "budget" for o in boot.outcomes)):
            raise ApplicationError(
                "the budget does not cover the bootstrap: raise the budget or use fewer bootstrap seeds",
                type=FailureType.BUDGET,
                non_retryable=True,
            )
        if boot.outcomes and all(o.error == "transform" for o in boot.outcomes):
            raise ApplicationError(
                "the baseline instruction was not found in the task app's LLM calls "
                f"({boot.outcomes[0].error_detail}). Copy the system message the task app sends into "
                "initial_prompt (or set mipro.stages)",
                type=FailureType.TRANSFORM,
                non_retryable=True,
            )

    async def _propose(self) -> None:
        for i, stage in enumerate(self.stages):
            self.s.instructions.append([stage.baseline_instruction, *self.m.instruction_candidates])
            await self._propose_for_stage(i, max(0, self.m.max_instructions - len(self.s.instructions[i])))
        self._set_phase("search")

    async def _regenerate(self) -> None:
        """Propose again mid-search (`generate_at_iterations`), grounded in the scores so far."""
        self.s.regenerated.append(self.s.iteration)
        for i in range(len(self.stages)):
            await self._propose_for_stage(i, max(1, (self.m.max_instructions - 1) // 2), with_history=True)

    async def _propose_for_stage(self, i: int, wanted: int, with_history: bool = False) -> None:
        stage = self.stages[i]
        history = instruction_scores(self.s, i) if with_history else []
        round_index = len(self.s.regenerated)
        await self._gate()
        self.proposals_in_flight += 1
        try:
            out = await self._propose_activity(i, stage, wanted, history, round_index)
        finally:
            self.proposals_in_flight -= 1
        self.s.spend.add("proposal", out.usage)
        first_new = len(self.s.instructions[i]) if with_history else 0
        self.s.instructions[i].extend(out.instructions)
        for j in range(first_new, len(self.s.instructions[i])):
            self._emit(
                "mipro.instruction.proposed",
                f"instruction {j} for {stage.stage_id}",
                {
                    "iteration": self.s.iteration,
                    "stage_id": stage.stage_id,
                    "instruction_id": j,
                    "instruction_text": self.s.instructions[i][j],
                },
            )

    async def _propose_activity(
        self, i: int, stage: StageSpec, wanted: int, history: list[tuple[str, float]], round_index: int
    ) -> ProposeOutput:
        return await workflow.execute_activity(
            "propose_instructions",
            ProposeInput(
                job_id=self.inp.job_id,
                meta=self.m.meta,
                meta_price=self.cfg.pricing.get(self.m.meta.model),
                stage=stage,
                task_description=self.s.task_description,
                demos=self.s.demo_pool[i][:MAX_PROPOSER_EXAMPLES],
                existing=list(self.s.instructions[i]),
                n=wanted,
                duplicate_retry_limit=self.m.duplicate_retry_limit,
                seed=self.m.seed * 101 + i + 7919 * round_index,
                history=history,
                failed_examples=self.s.failed_examples[i] if i < len(self.s.failed_examples) else [],
                max_cost_usd=self._proposal_allowance(),
                max_tokens=(
                    None
                    if self.cfg.termination.max_token_limit is None
                    else self.cfg.termination.max_token_limit - self.s.spend.total.total_tokens
                ),
            ),
            result_type=ProposeOutput,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(seconds=10),  # heartbeats are sent every second
            retry_policy=RETRY,
            summary=f"propose {wanted} instructions for stage {stage.stage_id}",
        )

    async def _search(self) -> None:
        blocks = minibatch_blocks(self.m.online_pool, self.m.batch_size, self.m.seed)
        while self.s.iteration < self.m.num_iterations and self.s.stop_reason is None:
            await self._gate()
            if self._check_termination():
                break
            if (
                self.s.iteration in self.m.generate_at_iterations
                and self.s.iteration not in self.s.regenerated
            ):
                await self._regenerate()
            seeds = blocks[self.s.iteration % len(blocks)]
            await self._ensure_baseline_on(seeds)
            choices = await self._suggest()
            if not choices:
                self.s.stop_reason = "search_space_exhausted"
                break
            await self._run_trials(choices, seeds)
            self.s.iteration += 1
            if self.s.iteration % self.m.validate_every_iterations == 0:
                await self._promote()
            self._update_details()
            self._upsert_search_attributes()
            await self._maybe_continue_as_new()
        await self._promote()

    async def _finish(self, status: str) -> OptimizationResult:
        await self._gate()  # a pause that arrived during the last promotion holds the final evaluation
        self._set_phase("final_eval")
        best_choice = self._choice_of(self.s.best_key or self._baseline_choice().key)
        base_choice = self._baseline_choice()
        jobs = [
            self._evaluate("test-best", self._compile(best_choice), self.m.test_pool, final=True, sharing=2)
        ]
        if best_choice.key != base_choice.key:
            jobs.append(
                self._evaluate(
                    "test-baseline", self._compile(base_choice), self.m.test_pool, final=True, sharing=2
                )
            )
        outs = await asyncio.gather(*jobs)
        for out in outs:
            self._account(out.outcomes)
        best_test = mean([o.score for o in outs[0].outcomes if o.score is not None])
        base_test = mean([o.score for o in outs[-1].outcomes if o.score is not None])
        self._set_phase("done")
        self._emit(
            "mipro.job.completed",
            f"done: test {base_test} -> {best_test}",
            {"best_score": best_test, "baseline_test_score": base_test, "stop_reason": self.s.stop_reason},
        )
        return self._result(status, test_scores=(base_test, best_test))

    # ---- search helpers --------------------------------------------------------------------------
    async def _ensure_baseline_on(self, seeds: list[int]) -> None:
        baseline = self._compile(self._baseline_choice())
        cached = self.s.online_cache.get(baseline.content_hash, {})
        missing = [s for s in seeds if s not in cached]
        if missing:
            out = await self._evaluate(f"baseline-i{self.s.iteration:04d}", baseline, missing)
            self._account(out.outcomes)
            self._cache(baseline.content_hash, out.outcomes)

    async def _suggest(self) -> list[CandidateChoice]:
        k = self.m.num_evaluations_per_iteration
        seeded: list[CandidateChoice] = []
        if (
            self.s.iteration == 0
            and self.m.informative_first_iteration
            and workflow.patched(FIRST_ITERATION_PATCH)
        ):
            seeded = self._informative_choices()[:k]
        if len(seeded) == k:
            return seeded
        rerun = self._leader_to_rerun(k - len(seeded))
        wanted = k - len(seeded) - len(rerun)
        exclude = [c.as_params() for c in seeded]
        fresh = await self._tpe_suggest(wanted, exclude=exclude) if wanted else []
        return seeded + fresh + rerun

    def _leader_to_rerun(self, slots: int) -> list[CandidateChoice]:
        """[the leader] when one of this iteration's trial numbers is a multiple of `reevaluate_every_trials`.

        A candidate is promoted on its minibatch lift; the best of many noisy lifts is often luck. Running
        the leader again on the new block (paired with the baseline there) firms up its lift before it costs
        a validation, and tells the TPE which of its favourites hold up.
        """
        every = self.m.reevaluate_every_trials
        first = len(self.s.trials)
        if not every or not any((t + 1) % every == 0 for t in range(first, first + slots)):
            return []
        if not workflow.patched(REEVALUATE_PATCH):
            return []
        leader = self._leader()
        return [leader.choice] if leader is not None else []

    def _informative_choices(self) -> list[CandidateChoice]:
        """Each instruction with the full-size bootstrapped demo set, in every stage.

        With only the baseline observed, the TPE's first picks are blind; these tell at once what the
        demos add and which instructions work with them (the baseline instruction first).
        """
        full = [min(1, len(sets) - 1) for sets in self.s.demo_sets]
        counts = [len(texts) for texts in self.s.instructions]
        choices: list[CandidateChoice] = []
        for j in range(max(counts)):
            choice = CandidateChoice(instruction=[min(j, n - 1) for n in counts], demo_set=full)
            if choice not in choices and self._compile(choice).content_hash not in self.s.online_cache:
                choices.append(choice)
        return choices

    async def _tpe_suggest(self, k: int, exclude: list[list[int]]) -> list[CandidateChoice]:
        tpe = self.m.tpe
        history = self._tpe_history()
        out: SuggestOutput = await workflow.execute_activity(
            "suggest_candidates",
            SuggestInput(
                space=self._space(),
                history=history,
                gamma=tpe.gamma,
                n_candidates=tpe.n_candidates,
                n_startup_trials=tpe.n_startup_trials,
                epsilon=tpe.epsilon,
                alpha=tpe.categorical_alpha,
                prior_weight=tpe.prior_weight,
                seed=(self.m.seed * 1_000_003 + self.s.iteration) % 2**31,
                k=k,
                exclude=exclude,
            ),
            result_type=SuggestOutput,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RETRY,
            summary=f"TPE suggestions for iteration {self.s.iteration}",
        )
        return [CandidateChoice(instruction=p[0::2], demo_set=p[1::2]) for p in out.configs]

    async def _run_trials(self, choices: list[CandidateChoice], seeds: list[int]) -> None:
        slots = asyncio.Semaphore(self.m.max_parallel_trials)
        first_trial = len(self.s.trials)

        async def trial(index: int, choice: CandidateChoice) -> EvaluateOutput | None:
            async with slots:
                await self._gate()
                if self.s.stop_reason is not None or self._check_termination(planned=index):
                    return None
                self._emit(
                    "mipro.trial.started",
                    f"trial {first_trial + index}",
                    {"iteration": self.s.iteration, "trial": first_trial + index, "candidate": choice.key},
                )
                candidate = self._compile(choice)
                cached = self.s.online_cache.get(candidate.content_hash, {})
                todo = [s for s in seeds if s not in cached]
                label = f"trial-{first_trial + index:04d}"
                if not todo:
                    return EvaluateOutput(outcomes=[])
                return await self._evaluate(
                    label, candidate, todo, sharing=min(len(choices), self.m.max_parallel_trials)
                )

        outs = await asyncio.gather(*(trial(i, c) for i, c in enumerate(choices)))
        for choice, out in zip(choices, outs, strict=True):
            if out is not None and not out.skipped_for_budget:
                self._record_trial(choice, seeds, out)

    def _record_trial(self, choice: CandidateChoice, seeds: list[int], out: EvaluateOutput) -> None:
        candidate = self._compile(choice)
        self._account(out.outcomes)
        self._cache(candidate.content_hash, out.outcomes)
        self.s.counters.trials += 1
        cache = self.s.online_cache.get(candidate.content_hash, {})
        base = self.s.online_cache.get(self._compile(self._baseline_choice()).content_hash, {})
        score = mean([cache[s] for s in seeds if s in cache])
        lift, n = lift_stats(cache, base, seeds)
        record = TrialRecord(
            trial=len(self.s.trials),
            iteration=self.s.iteration,
            choice=choice,
            candidate_hash=candidate.content_hash,
            seeds=seeds,
            minibatch_score=score,
            paired_lift=lift,
            n=n,
            errors=sum(1 for o in out.outcomes if not o.ok),
            elapsed_seconds=self._elapsed(),
            spend_usd=self.s.spend.total.cost_usd,
        )
        self.s.trials.append(record)
        self._emit(
            "mipro.trial.complete",
            f"trial {record.trial}: minibatch {score}",
            {
                "iteration": record.iteration,
                "trial": record.trial,
                "minibatch_score": score,
                "paired_lift": lift,
                "num_seeds": len(seeds),
                "errors": record.errors,
                "candidate": choice.key,
            },
        )
        self._check_termination()

    def _leader(self) -> CandidateSummary | None:
        """The most promising unvalidated candidate: the best positive paired lift, shrunk by its n."""
        ranked = [
            c
            for c in candidate_summaries(self.s, self._baseline_hash(), self._baseline_choice().key)
            if c.key not in self.s.validation and c.paired_lift is not None and c.paired_lift > 0
        ]
        if not ranked:
            return None
        shrink = self.m.batch_size / 2
        return max(
            ranked, key=lambda c: ((c.paired_lift or 0) * c.minibatch_n / (c.minibatch_n + shrink), c.key)
        )

    async def _promote(self) -> None:
        """Evaluate the leader on the validation seeds; it becomes the best if it beats the incumbent."""
        top = self._leader()
        if top is None:
            return
        out = await self._evaluate(
            f"val-{top.key.replace('|', '_').replace(':', '-')}", self._compile(top.choice), self.m.val_seeds
        )
        self._account(out.outcomes)
        score = mean([o.score for o in out.outcomes if o.score is not None]) or 0.0
        self.s.validation[top.key] = score
        self._emit(
            "mipro.fulleval.complete",
            f"validation of {top.key}: {score:.3f}",
            {
                "iteration": self.s.iteration,
                "candidate": top.key,
                "score": score,
                "num_seeds": len(self.m.val_seeds),
            },
        )
        improved = score > self.s.validation.get(self.s.best_key or "", 0.0)
        self.s.validations.append(
            ValidationRecord(
                after_trials=len(self.s.trials),
                key=top.key,
                score=score,
                incumbent=improved,
                elapsed_seconds=self._elapsed(),
                spend_usd=self.s.spend.total.cost_usd,
            )
        )
        if improved:
            self.s.best_key = top.key
            self._emit(
                "mipro.new_incumbent",
                f"new best {top.key}: validation {score:.3f}",
                {
                    "iteration": self.s.iteration,
                    "candidate": top.key,
                    "best_score": score,
                    "minibatch_score": top.minibatch_score,
                    "cumulative_trials": len(self.s.trials),
                },
            )

    # ---- evaluation and accounting ---------------------------------------------------------------
    async def _evaluate(
        self,
        label: str,
        candidate: CompiledCandidate,
        seeds: list[int],
        capture: bool = False,
        final: bool = False,
        sharing: int = 1,
    ) -> EvaluateOutput:
        """Evaluate a candidate on seeds, within the budgets: shrunk to what fits, or skipped.

        `sharing` is how many evaluations run side by side; they split `max_concurrent` rollouts, so a lone
        evaluation (a promotion, a baseline block) uses all of it.
        """
        await self._gate()
        seeds, allowance = self._fit_budget(candidate, seeds, final)
        if not seeds:
            return EvaluateOutput(outcomes=[], skipped_for_budget=True)
        concurrency = max(1, self.m.max_concurrent // sharing)
        waves = -(-len(seeds) // concurrency)
        timeout = timedelta(
            seconds=60 + waves * self.m.rollout_timeout_seconds * (self.m.rollout_retries + 1)
        )
        self.evaluations_in_flight += 1
        self.reserved = self.reserved.plus(allowance or Usage())
        try:
            out: EvaluateOutput = await workflow.execute_activity(
                "evaluate_candidate",
                EvaluateInput(
                    job_id=self.inp.job_id,
                    label=label,
                    target=self.target,
                    candidate=candidate,
                    seeds=seeds,
                    concurrency=concurrency,
                    capture_examples=capture,
                    max_cost_usd=allowance.cost_usd if allowance else None,
                    max_tokens=allowance.total_tokens if allowance else None,
                ),
                result_type=EvaluateOutput,
                start_to_close_timeout=timeout,
                # Heartbeats reach the server every 2 s; the slack absorbs a loaded server or worker.
                heartbeat_timeout=timedelta(seconds=15),
                retry_policy=RETRY,
                summary=f"{label}: {len(seeds)} seeds",
            )
            if out.lost_usage.calls or out.lost_usage.cost_usd:
                self.s.spend.add("rollout", out.lost_usage)
                self._emit(
                    "mipro.evaluation.resumed",
                    f"{label}: a lost attempt's spend on unfinished seeds is counted",
                    {"label": label, "lost_usd": out.lost_usage.cost_usd, "lost_calls": out.lost_usage.calls},
                    level="warning",
                )
            return out
        finally:
            self.evaluations_in_flight -= 1
            self.reserved = self.reserved.minus(allowance or Usage())

    def _fit_budget(
        self, candidate: CompiledCandidate, seeds: list[int], final: bool
    ) -> tuple[list[int], Usage | None]:
        """Shrink `seeds` to what the remaining budget allows and size this evaluation's hard allowance.

        During the search, enough is kept back for the final test evaluation. The allowance is enforced by
        the interceptor, call by call, so even a wrong estimate cannot overspend.
        """
        term = self.cfg.termination
        if term.max_spend_usd is None and term.max_rollout_spend_usd is None and term.max_token_limit is None:
            return seeds, None
        reserve = Usage() if final else self._final_reserve()
        usd, tokens = remaining_budget(term, self.s.spend, self.reserved.plus(reserve))
        estimate = self._estimate(candidate)
        n = len(seeds)
        if estimate is not None and (fit := rollouts_that_fit(estimate, usd, tokens)) is not None:
            n = min(n, fit)
        if (usd is not None and usd <= 0) or (tokens is not None and tokens <= 0):
            n = 0
        if n == 0:
            self._stop(budget_name(term, self.s.spend))
            return [], None
        share = 2 * SAFETY * n + 8  # + room for the interceptor's per-call upper-bound reservations
        allow_usd = usd if usd is None or estimate is None else min(usd, estimate.cost_usd * share)
        allow_tokens = (
            tokens if tokens is None or estimate is None else min(tokens, estimate.total_tokens * share)
        )
        if estimate is None:  # nothing measured yet: take at most half of what is free
            allow_usd = None if usd is None else usd / 2
            allow_tokens = None if tokens is None else tokens / 2
        return seeds[:n], Usage(cost_usd=allow_usd or 0.0, prompt_tokens=int(allow_tokens or 0)) if (
            allow_usd is not None or allow_tokens is not None
        ) else None

    def _proposal_allowance(self) -> float | None:
        term, spend = self.cfg.termination, self.s.spend
        limits = []
        if term.max_proposal_spend_usd is not None:
            limits.append(term.max_proposal_spend_usd - spend.proposal.cost_usd)
        if term.max_spend_usd is not None:
            limits.append(term.max_spend_usd - spend.total.cost_usd - self.reserved.cost_usd)
        return max(0.0, min(limits)) if limits else None

    def _estimate(self, candidate: CompiledCandidate) -> Usage | None:
        """Expected usage of one rollout of `candidate`: the baseline's, scaled by its number of demos."""
        if self.s.rollout_estimate is None:
            return None
        return scaled(self.s.rollout_estimate, 1 + sum(len(p.demos) for p in candidate.stages))

    def _final_reserve(self) -> Usage:
        if self.s.rollout_estimate is None:
            return Usage()
        n = len(self.m.test_pool)
        most = 1 + self.m.max_demo_set_size * len(self.stages)
        best = scaled(self.s.rollout_estimate, most * n * SAFETY)
        base = scaled(self.s.rollout_estimate, n * SAFETY)
        return best.plus(base)

    def _account(self, outcomes: list[SeedOutcome]) -> None:
        for o in outcomes:
            self.s.spend.add("rollout", o.usage)
            self.s.counters.record(o.ok, o.error)
        if any(o.error == "budget" for o in outcomes):
            self._stop(budget_name(self.cfg.termination, self.s.spend))

    def _cache(self, content_hash: str, outcomes: list[SeedOutcome]) -> None:
        cache = self.s.online_cache.setdefault(content_hash, {})
        for o in outcomes:
            if o.score is not None:
                cache[o.seed] = o.score

    def _check_termination(self, planned: int = 0) -> bool:
        if self.s.stop_reason is None:
            reason = termination_reason(
                self.cfg.termination, self.s.spend, self.s.counters, self._elapsed(), planned_trials=planned
            )
            if reason:
                self._stop(reason)
        return self.s.stop_reason is not None

    def _stop(self, reason: str) -> None:
        """Record why the job stops (the first reason wins) and say so once."""
        if self.s.stop_reason is not None:
            return
        self.s.stop_reason = reason
        self._emit("mipro.termination", f"stopping: {reason}", {"reason": reason}, level="warning")

    # ---- candidates ------------------------------------------------------------------------------
    def _baseline_choice(self) -> CandidateChoice:
        return CandidateChoice(instruction=[0] * len(self.stages), demo_set=[0] * len(self.stages))

    def _baseline_hash(self) -> str:
        return self._compile(self._baseline_choice()).content_hash

    def _space(self) -> list[int]:
        space: list[int] = []
        for i in range(len(self.stages)):
            space += [len(self.s.instructions[i]), len(self.s.demo_sets[i])]
        return space

    def _tpe_history(self) -> list[tuple[list[int], float, int]]:
        history = [
            (c.choice.as_params(), c.paired_lift or 0.0, max(1, c.minibatch_n))
            for c in candidate_summaries(self.s, self._baseline_hash(), self._baseline_choice().key)
            if c.minibatch_n > 0 or c.key == self._baseline_choice().key
        ]
        return history

    def _choice_of(self, key: str) -> CandidateChoice:
        parts = [p.split(":") for p in key.split("|")]
        return CandidateChoice(instruction=[int(a) for a, _ in parts], demo_set=[int(b) for _, b in parts])

    def _compile(self, choice: CandidateChoice) -> CompiledCandidate:
        stages = []
        for i, stage in enumerate(self.stages):
            instructions = self.s.instructions[i] if self.s.instructions else [stage.baseline_instruction]
            demo_sets = self.s.demo_sets[i] if self.s.demo_sets else [[]]
            demos = [self.s.demo_pool[i][j] for j in demo_sets[choice.demo_set[i]]]
            stages.append(
                StagePrompt(
                    stage_id=stage.stage_id, instruction=instructions[choice.instruction[i]], demos=demos
                )
            )
        return CompiledCandidate(stages=stages)

    async def _maybe_continue_as_new(self) -> None:
        """Start a fresh run carrying the state, before this run's history grows large."""
        trials_this_run = len(self.s.trials) - self.run_start_trials
        suggested = workflow.info().is_continue_as_new_suggested()
        if trials_this_run < self.m.continue_as_new_every_trials and not suggested:
            return
        if self.s.iteration >= self.m.num_iterations or self.s.stop_reason is not None:
            return  # the search is over: finishing is cheaper than a new run
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._emit(
            "mipro.continue_as_new",
            f"continuing as new run {self.s.runs + 1}",
            {"trials": len(self.s.trials), "history_events": workflow.info().get_current_history_length()},
        )
        self.s.runs += 1
        workflow.continue_as_new(self.inp.model_copy(update={"state": self.s}))

    async def _gate(self) -> None:
        """The pause gate in front of everything that spends: every evaluation (`_evaluate`: bootstrap,
        baselines, trials, promotions, the final test) and every proposal waits here while paused."""
        if self.s.paused:
            await workflow.wait_condition(lambda: not self.s.paused)

    def _upsert_search_attributes(self, status: str | None = None) -> None:
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

    # ---- events, progress, result ----------------------------------------------------------------
    def _emit(
        self, type_: str, message: str, data: dict[str, Any] | None = None, level: str = "info"
    ) -> None:
        self.s.events.append(
            Event(
                seq=self.s.next_seq,
                type=type_,
                level=level,
                message=message,
                data=data or {},
                created_at=workflow.now(),
            )
        )
        self.s.next_seq += 1
        if len(self.s.events) > MAX_EVENTS:
            del self.s.events[: len(self.s.events) - MAX_EVENTS]

    def _set_phase(self, phase: str) -> None:
        self.s.phase = phase  # type: ignore[assignment]
        self._emit("prompt.learning.phase.changed", f"phase: {phase}", {"phase": phase})
        self._update_details()
        self._upsert_search_attributes()

    def _elapsed(self) -> float:
        started = self.s.started_at or workflow.now()
        return (workflow.now() - started).total_seconds()

    def _update_details(self) -> None:
        p = self.progress()
        best = f"{p.best_validation_score:.3f}" if p.best_validation_score is not None else "-"
        workflow.set_current_details(
            f"**{p.phase}** · trials {p.trials_done}/{p.trials_planned} · rollouts {p.rollouts_done} · "
            f"best val {best} · ${p.spend_usd:.4f}"
        )

    @workflow.query
    def progress(self) -> Progress:
        summaries = candidate_summaries(self.s, self._baseline_hash(), self._baseline_choice().key)
        mb = [c.minibatch_score for c in summaries if c.minibatch_score is not None]
        planned = self.m.num_iterations * self.m.num_evaluations_per_iteration
        done = len(self.s.trials)
        elapsed = self._elapsed() if self.s.started_at else 0.0
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
            },
            tokens=self.s.spend.total.total_tokens,
            elapsed_seconds=elapsed,
            eta_seconds=eta,
            started_at=self.s.started_at,
            paused=self.s.paused,
            evaluations_in_flight=self.evaluations_in_flight,
            proposals_in_flight=self.proposals_in_flight,
            stop_reason=self.s.stop_reason,
        )

    @workflow.query
    def events(self, query: EventsQuery) -> list[Event]:
        return [e for e in self.s.events if e.seq > query.since_seq][: query.limit]

    @workflow.update
    def start(self) -> Progress:
        """Start a job created with `auto_start = false`."""
        self.s.start_requested = True
        return self.progress()

    @start.validator
    def _validate_start(self) -> None:
        if self.inp.auto_start or self.s.start_requested:
            raise ValueError("job has already started")

    @workflow.query
    def metrics(self) -> list[Metric]:
        return job_metrics(self.s.trials, self.s.validations, self.s.spend)

    @workflow.update
    def pause(self) -> Progress:
        self.s.paused = True
        self._emit("mipro.job.paused", "paused: no new trial starts until resumed")
        self._upsert_search_attributes()
        return self.progress()

    @pause.validator
    def _validate_pause(self) -> None:
        if not (self.inp.auto_start or self.s.start_requested):
            raise ValueError("job has not started: start it or cancel it")
        if self.s.paused:
            raise ValueError("job is already paused")
        if self.s.phase in ("final_eval", "done"):
            raise ValueError(f"job is in phase {self.s.phase}: nothing left to pause")

    @workflow.update
    def resume(self) -> Progress:
        self.s.paused = False
        self._emit("mipro.job.resumed", "resumed")
        self._upsert_search_attributes()
        return self.progress()

    @resume.validator
    def _validate_resume(self) -> None:
        if not self.s.paused:
            raise ValueError("job is not paused")

    @workflow.query
    def candidates(self) -> list[CandidateSummary]:
        return candidate_summaries(self.s, self._baseline_hash(), self._baseline_choice().key)

    @workflow.query
    def best(self) -> BestPrompt:
        choice = self._choice_of(self.s.best_key or self._baseline_choice().key)
        template = [ChatMessage(role=m.role, content=m.pattern) for m in self.cfg.initial_prompt.ordered()]
        candidate = self._compile(choice)
        return BestPrompt(
            choice=choice,
            instructions=[p.instruction for p in candidate.stages],
            messages=render_ready_messages(template, self.stages, candidate),
        )

    def _result(self, status: str, test_scores: tuple[float | None, float | None]) -> OptimizationResult:
        self._upsert_search_attributes(status)
        base_test, best_test = test_scores
        best = self.best()
        lift = best_test - base_test if best_test is not None and base_test is not None else None
        return OptimizationResult(
            job_id=self.inp.job_id,
            status=status,
            stop_reason=self.s.stop_reason,
            best=best,
            baseline_test_score=base_test,
            best_test_score=best_test,
            lift=lift,
            baseline_validation_score=self.s.validation.get(self._baseline_choice().key),
            best_validation_score=self.s.validation.get(self.s.best_key or ""),
            total_trials=len(self.s.trials),
            total_rollouts=self.s.counters.rollouts,
            rollout_errors=self.s.counters.rollout_errors,
            errors_by_kind=self.s.counters.errors_by_kind,
            trials=self.s.trials,
            instructions=self.s.instructions,
            validations=self.s.validations,
            attempted_candidates=candidate_summaries(
                self.s, self._baseline_hash(), self._baseline_choice().key
            ),
            costs=self.s.spend,
            elapsed_seconds=self._elapsed(),
            simulated_llm=self.cfg.policy.provider == "simulated",
            warnings=list(self.s.warnings),
        )


def _describe(info: TaskAppInfo, fallback: str) -> str:
    task = (info.task_info or {}).get("taskset") or (info.task_info or {}).get("task") or {}
    if isinstance(task, dict):
        text = task.get("description") or task.get("name")
        if isinstance(text, str) and text:
            return text
    return fallback
