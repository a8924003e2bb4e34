"""Task-app activities: the health check, and the evaluation of one candidate on a batch of seeds.

One activity evaluates a whole batch (seeds run concurrently up to `concurrency`), so the orchestration
costs one activity per trial, not per rollout. A failed rollout is retried with backoff and, if it still
fails, reported as an error of a named kind: never a score of 0. A task app's `Retry-After` (on a 429 or
a 5xx) sets the wait before the next attempt, capped at `MAX_RETRY_AFTER_SECONDS`.

The health check refuses seeds outside the ranges the task app advertises in /task_info for each pool's
split, naming them, and a refused task-app key as a TaskAppAuthError naming the env var to set. It also
reports which data the app says it serves and whether the policy's LLM is the simulated one (its
/v1/models answer).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mipro.activities.draining import DrainWatch, signal_workflow
from mipro.activities.resources import WorkerResources, heartbeat_forever
from mipro.activity_models import (
    BatchDraining,
    BatchProgress,
    EvaluateBatchInput,
    EvaluateBatchOutput,
    EvaluateInput,
    EvaluateOutput,
    EvaluationProgress,
    GatherInput,
    GatherOutput,
    HealthCheckInput,
    RolloutTarget,
    TaskAppInfo,
)
from mipro.errors import FailureType, task_app_key_fix
from mipro.interceptor.registry import CallRecord, Registry, Upstream
from mipro.judge import JudgeFailure, combine, judge_rollout, needs_judge, scores_without_reward
from mipro.retry_after import retry_after_seconds
from mipro.rollout_protocol import (
    SeedRange,
    auth_headers,
    failed_status,
    parse_reward,
    pools_outside_ranges,
    rollout_payload,
)
from mipro.types import CompiledCandidate, ErrorKind, FewShotExample, SeedOutcome, Usage

log = structlog.get_logger("activities.task_app")
RETRYABLE: set[str] = {"http_5xx", "rate_limited", "timeout", "connection", "bad_json", "llm_error"}
MAX_SEEDS_NAMED = 20
MODELS_PROBE_TIMEOUT_S = 5.0
MAX_DATA_SOURCE_CHARS = 300
# A rollout's slot among its evaluation's (or its job's) rollouts in flight.
SlotTaker = Callable[[], AbstractAsyncContextManager[Any]]


class RolloutFailure(Exception):
    def __init__(
        self,
        kind: ErrorKind,
        detail: str,
        retry_after: float | None = None,
        calls: list[CallRecord] | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.retry_after = retry_after  # seconds the task app asked us to wait (Retry-After), if it did
        self.calls = calls or []  # the attempt's LLM calls, when they were already taken from the registry


def backoff_seconds(failure: RolloutFailure, attempt: int) -> float:
    """The wait before the next attempt: the task app's Retry-After, else exponential backoff."""
    if failure.retry_after is not None:
        return failure.retry_after
    return min(0.25 * 2 ** (attempt - 1), 4.0)


def _named(seeds: list[int]) -> str:
    more = f" and {len(seeds) - MAX_SEEDS_NAMED} more" if len(seeds) > MAX_SEEDS_NAMED else ""
    return ", ".join(str(s) for s in seeds[:MAX_SEEDS_NAMED]) + more


def _ranges_text(ranges: list[SeedRange]) -> str:
    return ", ".join(f"{lo}-{hi}" for lo, hi in ranges)


def check_seed_ranges(inp: HealthCheckInput, task_info: dict[str, Any] | None) -> None:
    """Refuse the job when a seed pool holds seeds outside the ranges the task app advertises for the
    pool's split (`pool_splits`, else `split`)."""
    outside = pools_outside_ranges(task_info, inp.seed_pools, inp.pool_splits, inp.split)
    if not outside:
        return
    shown = "; ".join(
        f"{pool}: {_named(o.seeds)} (split {o.split or 'any'}: {_ranges_text(o.ranges)})"
        for pool, o in outside.items()
    )
    raise ApplicationError(
        f"seeds outside the task app's advertised seed ranges: {shown}. Use seeds within the range of "
        "each pool's split, or another split (env_config / pool_env_config)",
        {
            "outside": {pool: o.seeds for pool, o in outside.items()},
            "ranges": {pool: o.ranges for pool, o in outside.items()},
            "splits": {pool: o.split for pool, o in outside.items()},
        },
        type=FailureType.HEALTH_CHECK,
        non_retryable=True,
    )


def resume_point(inp: EvaluateInput, heartbeat_details: Sequence[Any]) -> EvaluationProgress:
    """Where this attempt starts: from scratch, or after what the last attempt's heartbeat recorded."""
    if not heartbeat_details:
        return EvaluationProgress(label=inp.label, total=len(inp.seeds))
    last = EvaluationProgress.model_validate(heartbeat_details[-1])
    log.info("evaluation_resumed", job_id=inp.job_id, trial=inp.label, done=len(last.finished))
    return last.next_attempt()


def draining_notice(label: str, runs: Sequence[_ItemRun]) -> BatchDraining:
    """The batch's scores so far, per item."""
    scores = {
        run.inp.label: {o.seed: o.score for o in run.state.finished if o.score is not None} for run in runs
    }
    return BatchDraining(label=label, scores=scores)


def batch_resume_points(inp: EvaluateBatchInput) -> list[EvaluationProgress]:
    """Where each item of this attempt starts: from scratch, or after the last heartbeat's record of it
    (this activity's, else that of the lost attempt on another worker the batch was moved from)."""
    details = activity.info().heartbeat_details
    last = BatchProgress.model_validate(details[-1]) if details else inp.resume
    if last is None:
        return [EvaluationProgress(label=item.label, total=len(item.seeds)) for item in inp.items]
    log.info("batch_resumed", job_id=inp.job_id, label=inp.label, done=[p.done for p in last.items])
    return [progress.next_attempt() for progress in last.items]


@dataclass
class _ItemRun:
    """One evaluation in flight: its input, its progress, and the interceptor version serving it."""

    inp: EvaluateInput
    state: EvaluationProgress
    version: str | None = None
    _last: tuple[tuple[int, Usage], dict[str, Any]] | None = None
    to_start: int = 0  # its rollouts not started yet (in a batch: they wait for a slot)

    def __post_init__(self) -> None:
        finished = {o.seed for o in self.state.finished}
        self.to_start = sum(1 for seed in self.inp.seeds if seed not in finished)

    def snapshot(self, registry: Registry) -> dict[str, Any]:
        """The heartbeat's record of this evaluation (what it has committed, while its version lives).
        Dumped again only when it changed: a batch heartbeats every item every second."""
        if self.version is not None:
            self.state.attempt_committed = registry.committed(self.version)
        self.state.done = len(self.state.finished)
        key = (self.state.done, self.state.attempt_committed)
        if self._last is None or self._last[0] != key:
            self._last = (key, self.state.model_dump(mode="json"))
        return self._last[1]


def remaining_allowance(inp: EvaluateInput, spent: Usage) -> Usage | None | Literal["exhausted"]:
    """This attempt's hard allowance: the evaluation's, less what earlier attempts spent."""
    if not inp.max_cost_usd and not inp.max_tokens:  # None or 0: no cap (as the interceptor reads it)
        return None
    cost = inp.max_cost_usd - spent.cost_usd if inp.max_cost_usd else None
    tokens = inp.max_tokens - spent.total_tokens if inp.max_tokens else None
    if (cost is not None and cost <= 0) or (tokens is not None and tokens <= 0):
        return "exhausted"  # an allowance of 0 would mean "no cap" to the interceptor
    return Usage(cost_usd=cost or 0.0, prompt_tokens=tokens or 0)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_summary(response: httpx.Response) -> str:
    """A refusal's code and message (synth's `{"detail": {"error": {"code", "message"}}}`), else the start
    of the body. Never the whole error object: synth's 400 lists the first characters of the keys."""
    body = _json(response)
    detail = body.get("detail") if isinstance(body, dict) else None
    error = detail.get("error") if isinstance(detail, dict) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict) and error is None:
        error = body["error"]
    if isinstance(error, dict):
        parts = [str(error[k]) for k in ("code", "message") if isinstance(error.get(k), str)]
        if parts:
            return ": ".join(parts)[:200]
    if isinstance(detail, str):
        return detail[:200]
    return response.text[:200]


def auth_refusal(response: httpx.Response) -> str | None:
    """Why the task app refused our key, or None if it did not: a 401/403, a 400 whose body says
    `unauthorised` (synth's task apps, and ours), or a 200 /health saying `authorized: false` (synth's
    auth-tolerant /health on Modal)."""
    status = response.status_code
    if status in (401, 403) or (status == 400 and "unauthori" in response.text.lower()):
        return f"{status} {_error_summary(response)}"
    body = _json(response) if status == 200 else None
    if isinstance(body, dict) and body.get("authorized") is False:
        return "/health says authorized: false"
    return None


def auth_error(url: str, route: str, reason: str, key_env: str | None, key_sent: bool) -> ApplicationError:
    """The job's TaskAppAuthError: which route refused the key, and which env var to set."""
    fix = task_app_key_fix(key_env, key_sent)
    return ApplicationError(
        f"task app at {url} refused the task-app key on {route} ({reason}): {fix}",
        {"task_app_api_key_env": key_env, "key_sent": key_sent},
        type=FailureType.AUTH,
        non_retryable=True,
    )


def data_source_of(health: Any, task_info: dict[str, Any] | None) -> str | None:
    """Which data the task app says it serves: /health's `data_source` (the example apps), else the
    taskset's `data_source` / `source`, or synth's `hf_dataset` (its Hugging Face dataset name)."""
    info = task_info if isinstance(task_info, dict) else {}
    taskset = info.get("taskset") if isinstance(info.get("taskset"), dict) else {}
    dataset = info.get("dataset") if isinstance(info.get("dataset"), dict) else {}
    candidates = [
        health.get("data_source") if isinstance(health, dict) else None,
        *(place.get(key) for place in (taskset, dataset) for key in ("data_source", "source")),
    ]
    for value in candidates:
        if isinstance(value, str) and value.strip():
            return value.strip()[:MAX_DATA_SOURCE_CHARS]
    hf = taskset.get("hf_dataset") or dataset.get("hf_dataset")
    return f"hf_dataset: {hf}"[:MAX_DATA_SOURCE_CHARS] if isinstance(hf, str) and hf.strip() else None


def models_url(inference_url: str) -> str:
    """`{base}/models` of an OpenAI-compatible base URL (`.../v1`, or a full `.../chat/completions` URL)."""
    base = inference_url.split("?", 1)[0].rstrip("/")
    base = base.removesuffix("/chat/completions").removesuffix("/completions")
    return f"{base}/models"


def simulated_llm_of(response: httpx.Response) -> bool | None:
    """Whether a `/models` answer comes from the simulated LLM (mipro.simllm): its `X-Simulated-LLM: true`
    header, or a model list whose every model is `owned_by: "simulated"` / named `simulated/...`. None when
    the answer says neither (not a 200 model list)."""
    if response.headers.get("x-simulated-llm", "").strip().lower() == "true":
        return True
    if response.status_code != 200:
        return None
    body = _json(response)
    models = body.get("data") if isinstance(body, dict) else None
    if not isinstance(models, list) or not models or not all(isinstance(m, dict) for m in models):
        return None
    return all(
        m.get("owned_by") == "simulated" or str(m.get("id", "")).startswith("simulated/") for m in models
    )


class TaskAppActivities:
    def __init__(self, resources: WorkerResources) -> None:
        self.res = resources

    @activity.defn(name="check_task_app")
    async def check_task_app(self, inp: HealthCheckInput) -> TaskAppInfo:
        key = self.res.secret(inp.task_app_api_key_env)
        headers = auth_headers(key)
        url = inp.task_app_url.rstrip("/")
        try:
            health = await self.res.http.get(f"{url}/health", headers=headers, timeout=10)
        except httpx.HTTPError as exc:
            raise ApplicationError(
                f"task app at {url} is unreachable: {type(exc).__name__}: {exc}",
                type=FailureType.HEALTH_CHECK,
                non_retryable=True,
            ) from None
        if reason := auth_refusal(health):
            raise auth_error(url, "/health", reason, inp.task_app_api_key_env, key is not None)
        if health.status_code != 200:
            summary = _error_summary(health)
            if "missing_environment_api_key" in summary:  # synth's app started without its own key
                summary += " (the task app itself has no key: start it with ENVIRONMENT_API_KEY set)"
            raise ApplicationError(
                f"task app at {url} answered /health with {health.status_code}: {summary}",
                type=FailureType.HEALTH_CHECK,
                non_retryable=True,
            )
        task_info = await self._task_info(url, headers, inp.task_app_api_key_env, key is not None)
        check_seed_ranges(inp, task_info)
        return TaskAppInfo(
            healthy=True,
            task_info=task_info,
            data_source=data_source_of(_json(health), task_info),
            simulated_llm=await self._simulated_llm(inp.policy_inference_url, inp.policy_api_key_env),
        )

    async def _task_info(
        self, url: str, headers: dict[str, str], key_env: str | None, key_sent: bool
    ) -> dict[str, Any] | None:
        """/task_info (best effort: None when the app has none), but a refused key is an auth failure."""
        try:
            response = await self.res.http.get(f"{url}/task_info", headers=headers, timeout=10)
        except httpx.HTTPError:
            return None
        if response.status_code >= 400 and (reason := auth_refusal(response)):
            raise auth_error(url, "/task_info", reason, key_env, key_sent)
        body = _json(response) if response.status_code == 200 else None
        return body if isinstance(body, dict) else None

    async def _simulated_llm(self, inference_url: str | None, key_env: str | None = None) -> bool | None:
        """Whether the policy's LLM is the simulated one, from its /models answer; None when it cannot
        tell (no URL, no answer, or an answer that says neither). Never fails the health check."""
        if not inference_url:
            return None
        try:
            key = self.res.secret(key_env)
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            response = await self.res.http.get(
                models_url(inference_url), headers=headers, timeout=MODELS_PROBE_TIMEOUT_S
            )
        except (httpx.HTTPError, ValueError):  # ValueError: an unusable URL
            return None
        return simulated_llm_of(response)

    @activity.defn(name="gather_baseline_messages")
    async def gather_baseline_messages(self, inp: GatherInput) -> GatherOutput:
        """Run one rollout with the app's own prompt (its calls pass the interceptor unchanged) and return
        the messages of its LLM calls: a job without an initial_prompt takes its baseline from them."""
        target = inp.target
        task_key = self.res.secret(target.task_app_api_key_env)
        nothing = CompiledCandidate(stages=[])
        version = self.res.registry.register(nothing, [], self._policy(target), caller_key=task_key)
        evaluation = EvaluateInput(
            job_id=inp.job_id,
            label="gather",
            target=target,
            candidate=nothing,
            seeds=[inp.seed],
            concurrency=1,
        )
        cid = f"trace_{inp.job_id}-gather-s{inp.seed}-a{activity.info().attempt}"
        try:
            _, calls = await self._rollout_once(evaluation, version, inp.seed, cid, task_key)
        except RolloutFailure as failure:  # the reward does not matter here, the calls do
            calls = failure.calls or self.res.registry.take_records(version, cid)
            if not calls:
                raise ApplicationError(
                    f"the task app made no LLM call on seed {inp.seed} ({failure.kind}: {failure})",
                    type=FailureType.HEALTH_CHECK,
                    non_retryable=failure.kind not in RETRYABLE,
                ) from None
        finally:
            self.res.registry.unregister(version)
        return GatherOutput(calls=[c.request_messages for c in calls], usage=_sum_usage(calls))

    @activity.defn(name="evaluate_candidate")
    async def evaluate_candidate(self, inp: EvaluateInput) -> EvaluateOutput:
        """Run the candidate on the seeds. A retried attempt resumes from the last heartbeat: finished seeds
        are not run again, and the allowance is what earlier attempts left of it."""
        run = _ItemRun(inp, resume_point(inp, activity.info().heartbeat_details))
        beat = asyncio.create_task(heartbeat_forever(lambda: run.snapshot(self.res.registry)))
        try:
            slots = asyncio.Semaphore(inp.concurrency)
            return await self._evaluate(run, lambda: slots)
        finally:
            beat.cancel()

    @activity.defn(name="evaluate_candidates")
    async def evaluate_candidates(self, inp: EvaluateBatchInput) -> EvaluateBatchOutput:
        """Run several evaluations sharing `inp.concurrency` rollout slots (FIFO: a finished evaluation's
        slots go to the next one's seeds at once), at most `inp.max_parallel` of them at a time. A retried
        attempt resumes each item from the last heartbeat, as `evaluate_candidate` does."""
        runs = [
            _ItemRun(item, state) for item, state in zip(inp.items, batch_resume_points(inp), strict=True)
        ]
        items = asyncio.Semaphore(inp.max_parallel)
        watch = DrainWatch(
            sum(run.to_start for run in runs),
            inp.concurrency,
            lambda: draining_notice(inp.label, runs),
            self.notify_draining if inp.notify_draining else None,
        )

        def progress() -> dict[str, Any]:
            return {"items": [run.snapshot(self.res.registry) for run in runs]}

        beat = asyncio.create_task(heartbeat_forever(progress))
        # The job's slots, shared with its other batches running on this worker (overlapping iterations).
        async with self.res.job_rollout_slots(inp.job_id, inp.concurrency) as rollouts:

            async def one(run: _ItemRun) -> EvaluateOutput:
                @asynccontextmanager
                async def slot() -> AsyncIterator[None]:
                    async with rollouts.slot(inp.priority):
                        run.to_start -= 1
                        watch.started()
                        yield

                async with items:
                    try:
                        return await self._evaluate(run, slot)
                    finally:  # what it did not start (a spent allowance, a failure) never will
                        watch.started(run.to_start)
                        run.to_start = 0

            try:
                return EvaluateBatchOutput(outputs=list(await asyncio.gather(*(one(run) for run in runs))))
            finally:
                beat.cancel()
                watch.close()

    async def notify_draining(self, notice: BatchDraining) -> None:
        """Tell the job its batch drains (a method, so a test can watch the notices)."""
        await signal_workflow(notice)

    @activity.defn(name="pin_rollout_worker")
    async def pin_rollout_worker(self) -> str:
        """This worker's own rollout queue: a job sends its overlapping batches there, so their rollouts
        share one cap (`max_concurrent`) in one process."""
        if self.res.own_rollout_queue is None:
            raise ApplicationError("this worker has no rollout queue of its own", non_retryable=True)
        return self.res.own_rollout_queue

    async def _evaluate(self, run: _ItemRun, slot: SlotTaker) -> EvaluateOutput:
        inp, state = run.inp, run.state
        finished = {o.seed for o in state.finished}
        todo = [seed for seed in inp.seeds if seed not in finished]
        allowance = remaining_allowance(inp, state.spent())
        if allowance == "exhausted":
            detail = "the allowance was spent by earlier attempts"
            new = [SeedOutcome(seed=s, error="budget", error_detail=detail) for s in todo]
        else:
            new = await self._run_seeds(run, todo, allowance, slot)
        by_seed = {o.seed: o for o in [*state.finished, *new]}
        return EvaluateOutput(outcomes=[by_seed[s] for s in inp.seeds], lost_usage=state.lost)

    async def _run_seeds(
        self, run: _ItemRun, seeds: list[int], allowance: Usage | None, slot: SlotTaker
    ) -> list[SeedOutcome]:
        inp, state, target = run.inp, run.state, run.inp.target
        upstream = self._policy(target)
        task_key = self.res.secret(target.task_app_api_key_env)
        judge = None
        if target.judge is not None:
            judge = Upstream(
                base_url=target.judge.inference_url or target.policy.inference_url,
                model=target.judge.model,
                api_key=self.res.secret(target.judge.api_key_env),
                price=target.judge_price,
                timeout_seconds=target.rollout_timeout_seconds,
            )
        stage_upstreams = {
            stage_id: Upstream(
                base_url=own.inference_url,
                model=own.model,
                api_key=self.res.secret(own.api_key_env),
                price=own.price,
                timeout_seconds=target.rollout_timeout_seconds,
                body_overrides=own.body_overrides,
            )
            for stage_id, own in target.stage_policies.items()
        }
        version = self.res.registry.register(
            inp.candidate,
            target.stages,
            upstream,
            caller_key=task_key,
            allowance=allowance,
            stage_upstreams=stage_upstreams,
        )
        run.version = version

        async def one(seed: int) -> SeedOutcome:
            async with slot(), self.res.rollout_slots:
                outcome = await self._rollout_with_retries(inp, version, seed, task_key, judge)
            state.finished.append(outcome)
            state.attempt_finished = state.attempt_finished.plus(outcome.usage)
            return outcome

        try:
            with structlog.contextvars.bound_contextvars(job_id=inp.job_id, trial=inp.label):
                return list(await asyncio.gather(*(one(s) for s in seeds)))
        finally:
            run.snapshot(self.res.registry)  # the last committed usage, before the version is gone
            run.version = None
            self.res.registry.unregister(version)

    def _policy(self, target: RolloutTarget) -> Upstream:
        """Where the job policy's calls go (the key from this worker's environment)."""
        return Upstream(
            base_url=target.policy.inference_url,
            model=target.policy.model,
            api_key=self.res.secret(target.policy.api_key_env),
            price=target.policy_price,
            timeout_seconds=target.rollout_timeout_seconds,
        )

    async def _rollout_with_retries(
        self, inp: EvaluateInput, version: str, seed: int, task_key: str | None, judge: Upstream | None
    ) -> SeedOutcome:
        usage = Usage()
        attempts = inp.target.rollout_retries + 1
        for attempt in range(1, attempts + 1):
            cid = f"trace_{inp.job_id}-{inp.label}-s{seed}-a{attempt}"
            try:
                reward, calls = await self._rollout_once(inp, version, seed, cid, task_key)
            except RolloutFailure as failure:
                calls = failure.calls or self.res.registry.take_records(version, cid)
                usage = usage.plus(_sum_usage(calls))
                log.info(
                    "rollout_failed",
                    job_id=inp.job_id,
                    trial=inp.label,
                    seed=seed,
                    attempt=attempt,
                    kind=failure.kind,
                    detail=str(failure)[:200],
                )
                if failure.kind not in RETRYABLE or attempt == attempts:
                    return SeedOutcome(
                        seed=seed,
                        error=failure.kind,
                        error_detail=str(failure)[:500],
                        attempts=attempt,
                        usage=usage,
                    )
                await asyncio.sleep(backoff_seconds(failure, attempt))
                continue
            usage = usage.plus(_sum_usage(calls))
            done = SeedOutcome(seed=seed, attempts=attempt, usage=usage, reward=reward)
            try:
                scored = await self._score(inp, version, calls, done, judge)
            except JudgeFailure as failure:
                detail = str(failure)[:500]
                log.info(
                    "rollout_judge_failed",
                    job_id=inp.job_id,
                    trial=inp.label,
                    seed=seed,
                    kind=failure.kind,
                    detail=detail[:200],
                )
                return done.model_copy(
                    update={
                        "error": failure.kind,
                        "error_detail": detail,
                        "usage": usage.plus(failure.usage),
                        "judge_usage": failure.usage,
                    }
                )
            if inp.capture_examples and scored.score is not None:
                scored.examples = _stage_examples(calls, seed, scored.score)
                scored.example = scored.examples[-1] if scored.examples else None
            return scored
        raise AssertionError("unreachable")

    async def _score(
        self,
        inp: EvaluateInput,
        version: str,
        calls: list[CallRecord],
        done: SeedOutcome,
        judge: Upstream | None,
    ) -> SeedOutcome:
        """The rollout's score: the task app's reward, or the judge's score (or a blend) when the judge is
        asked (mipro/judge.py). Raises JudgeFailure when the judge gives none."""
        config = inp.target.judge
        if config is None or judge is None or not needs_judge(config.mode, done.reward):
            return done.model_copy(update={"score": done.reward})
        attempts = inp.target.rollout_retries + 1
        verdict = await judge_rollout(
            self.res.http, self.res.registry, version, judge, config, calls, attempts
        )
        score = combine(config.mode, config.weight, done.reward, verdict.score)
        return done.model_copy(
            update={
                "score": score,
                "judge_score": verdict.score,
                "usage": done.usage.plus(verdict.usage),  # the judge's calls are the rollout's cost too
                "judge_usage": verdict.usage,
            }
        )

    async def _rollout_once(
        self, inp: EvaluateInput, version: str, seed: int, cid: str, task_key: str | None
    ) -> tuple[float | None, list[CallRecord]]:
        """One attempt: the task app's reward (None only when the judge can score the rollout without it)
        and the attempt's LLM calls."""
        target = inp.target
        inference_url = f"{self.res.interceptor_url}/v1/{version}?cid={cid}"
        payload = rollout_payload(
            target, seed, f"prompt-learning-{seed}-{inp.label}", cid, inference_url, candidate=inp.candidate
        )
        try:
            response = await self.res.http.post(
                f"{target.task_app_url}/rollout",
                json=payload,
                headers=auth_headers(task_key),
                timeout=target.rollout_timeout_seconds,
            )
        except httpx.TimeoutException:
            raise RolloutFailure("timeout", f"no answer within {target.rollout_timeout_seconds}s") from None
        except httpx.TransportError as exc:
            raise RolloutFailure("connection", f"{type(exc).__name__}: {exc}") from None
        calls = self.res.registry.take_records(version, cid)
        key_env, key_sent = target.task_app_api_key_env, task_key is not None
        try:
            _raise_for_status(response, calls, target.task_app_url, key_env, key_sent)
        except RolloutFailure as failure:
            failure.calls = calls
            raise
        try:
            body = response.json()
        except ValueError:
            detail = f"unparseable body: {response.text[:200]!r}"
            raise RolloutFailure("bad_json", detail, calls=calls) from None
        reward = parse_reward(body)
        if reward is None and (failed_status(body) is not None or not scores_without_reward(target.judge)):
            status = failed_status(body)
            detail = (
                f"the rollout failed (success_status {status!r})" if status else "response carries no reward"
            )
            raise RolloutFailure("no_reward", detail, calls=calls)
        return reward, calls


def _raise_for_status(
    response: httpx.Response, calls: list[CallRecord], url: str, key_env: str | None, key_sent: bool
) -> None:
    if response.status_code < 400:
        return
    if reason := auth_refusal(response):
        raise auth_error(url, "/rollout", reason, key_env, key_sent)
    failed = [c for c in calls if c.error_kind]
    if any(c.error_kind == "budget" for c in failed):
        raise RolloutFailure("budget", "refused by the budget guard")
    if transform := next((c for c in failed if c.error_kind == "transform"), None):
        raise RolloutFailure("transform", transform.error or "")
    if failed:
        raise RolloutFailure("llm_error", failed[-1].error or "")
    kind: ErrorKind = "http_5xx" if response.status_code >= 500 else "http_4xx"
    if response.status_code == 429:
        kind = "rate_limited"
    retry_after = retry_after_seconds(response.headers.get("retry-after"))
    raise RolloutFailure(kind, f"{response.status_code}: {response.text[:200]}", retry_after=retry_after)


def _sum_usage(calls: list[CallRecord]) -> Usage:
    total = Usage()
    for call in calls:
        total = total.plus(call.usage)
    return total


def _stage_examples(calls: list[CallRecord], seed: int, score: float) -> list[FewShotExample]:
    """The demos a good rollout yields, one per stage: the stage's last answered call, as its final user
    turn (as the task app sent it) and the answer; in the order the stages last spoke."""
    last: dict[str, CallRecord] = {}
    for call in calls:
        if call.answer is not None:
            last.pop(call.stage_id, None)
            last[call.stage_id] = call
    examples = []
    for call in last.values():
        users = [m for m in call.request_messages if m.role == "user" and m.content]
        if users and call.answer is not None:
            examples.append(
                FewShotExample(
                    seed=seed,
                    stage_id=call.stage_id,
                    input=users[-1].content or "",
                    answer=call.answer,
                    score=score,
                )
            )
    return examples
