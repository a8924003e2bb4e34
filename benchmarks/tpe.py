"""Benchmark: our categorical TPE (mipro/tpe.py) vs Optuna's TPESampler vs random search.

    python benchmarks/tpe.py [--seeds 200] [--quick] [--jobs N] [--variant NAME:key=val,...] [--name tpe_x]

Synthetic problems shaped like MIPRO search spaces, with minibatch-like noise:

  (a) one stage:    10 instructions x 12 demo sets                      (2 dims, 120 configs)
  (b) three stages: (5 instructions x 6 demo sets) per stage             (6 dims, 27,000 configs)

True quality = base + per-dimension effects + small pairwise interactions (every pair of dims), clipped
to [0.02, 0.98]. A trial's observed score is Binomial(batch, true) / batch with batch = 24, like the
mean of a 24-example minibatch. Every optimizer proposes one config at a time (k=1) and is told the
noisy score: ours gets Observation(params, score, n=24), Optuna gets `study.tell(trial, score)`.

Optimizers:
  ours           mipro.tpe.suggest with default TPESettings, as the workflow runs it: never repeats a
                 config it suggests, and every 5th trial re-evaluates the current pick
  optuna-mv      TPESampler(seed=seed, multivariate=True): what DSPy MIPROv2 uses; ask/tell with a fixed
                 CategoricalDistribution per dimension, so it may re-propose already-tried configs
  optuna-uni     TPESampler(seed=seed, multivariate=False): Optuna's independent (univariate) TPE
  random         uniform random search without replacement

Regret after T trials = true optimum - true value of the config the optimizer would pick: the distinct
config with the best observed mean score (repeats of a config are averaged, as DSPy does; ties go to
the config with more rollouts, then the earlier one). Secondary: "tried" regret = true optimum - best
true value among the configs tried so far. Budgets count trials, not distinct configs. The problem
instance, the noise and the optimizer seed all vary with the seed; every optimizer sees the same problem
instance for a given seed, and the noise uses common random numbers (the j-th evaluation of a given config
scores the same for every optimizer), so differences between optimizers are paired.

Part (c) times one suggestion on the 6-dim space with N = 10, 100, 1000 random observations in the
history: ours three ways: `suggest(...)` on prebuilt Observations, `suggest_arrays(...)` on prebuilt
columns, and the activity path: the `suggest_candidates` activity function itself on a SuggestInput
whose history is the list of (params, score, n) tuples the workflow sends (it builds the columns from
the tuples, then calls suggest_arrays); Optuna = `study.ask(distributions)` (which samples every
param), with the N trials added by `study.add_trial(create_trial(...))`; each timed trial is then told
FAIL so the history stays at N. Median over interleaved repeats.

Writes benchmarks/results/tpe.md (tables, command, machine) and benchmarks/results/tpe_regret.svg.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import optuna  # noqa: E402
from common import fmt_mean_se, machine_info, mean_se, svg_line_panels, table  # noqa: E402
from optuna.distributions import CategoricalDistribution  # noqa: E402

from mipro.activities.search import suggest_candidates  # noqa: E402
from mipro.activity_models import SuggestInput  # noqa: E402
from mipro.config import MiproSettings  # noqa: E402
from mipro.tpe import Observation, TPESettings, suggest, suggest_arrays  # noqa: E402

WORKFLOW_REEVAL: int = MiproSettings.model_fields["reevaluate_every_trials"].default

optuna.logging.set_verbosity(optuna.logging.WARNING)

BATCH = 24
BUDGETS = (20, 50, 100)
TIMING_NS = (10, 100, 1000)
RESULTS = ROOT / "benchmarks" / "results"
BASE_OPTIMIZERS = ("ours", "optuna-mv", "optuna-uni", "random")


# ----------------------------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class ProblemSpec:
    key: str
    title: str
    space: tuple[int, ...]
    names: tuple[str, ...]  # Optuna parameter names, as DSPy's _get_param_distributions makes them
    main_sd: float  # sd of each per-dimension option effect
    inter_sd: float  # sd of each pairwise interaction cell


def _dspy_names(stages: int) -> tuple[str, ...]:
    return tuple(f"{i}_predictor_{kind}" for i in range(stages) for kind in ("instruction", "demos"))


PROBLEMS = {
    "a": ProblemSpec("a", "(a) one stage, 10 instr x 12 demo sets", (10, 12), _dspy_names(1), 0.06, 0.015),
    "b": ProblemSpec("b", "(b) three stages, (5 x 6) per stage", (5, 6) * 3, _dspy_names(3), 0.04, 0.01),
}


def make_truth(spec: ProblemSpec, seed: int) -> np.ndarray:
    """True quality of every config as an array of shape `spec.space`, values in [0.02, 0.98]."""
    rng = np.random.default_rng([seed, 0x5EED, ord(spec.key)])
    n = len(spec.space)
    truth = np.full(spec.space, rng.uniform(0.35, 0.6))
    for d, size in enumerate(spec.space):
        shape = [1] * n
        shape[d] = size
        truth = truth + rng.normal(0.0, spec.main_sd, size).reshape(shape)
    for d in range(n):
        for e in range(d + 1, n):
            shape = [1] * n
            shape[d], shape[e] = spec.space[d], spec.space[e]
            truth = truth + rng.normal(0.0, spec.inter_sd, (spec.space[d], spec.space[e])).reshape(shape)
    return np.clip(truth, 0.02, 0.98)


# --------------------------------------------------------------------------------------------- optimizers


class Ours:
    """mipro.tpe.suggest, k=1, as the workflow runs it: every reeval-th trial (the workflow's
    `mipro.reevaluate_every_trials`, default 5) re-evaluates the current pick (here the best observed mean;
    in the workflow the leader by shrunk paired lift) instead of asking suggest. reeval=0: never."""

    def __init__(
        self, spec: ProblemSpec, seed: int, settings: TPESettings | None = None, reeval: int = WORKFLOW_REEVAL
    ):
        self.space = list(spec.space)
        self.seed = seed
        self.settings = settings or TPESettings()
        self.reeval = reeval
        self.history: list[Observation] = []

    def ask(self) -> tuple[int, ...]:
        t = len(self.history)
        if self.reeval and t and t % self.reeval == self.reeval - 1:
            sums: dict[tuple[int, ...], list[float]] = {}
            for i, o in enumerate(self.history):
                s = sums.setdefault(tuple(o.params), [0.0, 0, i])
                s[0] += o.score
                s[1] += 1
            return max(sums, key=lambda p: (sums[p][0] / sums[p][1], sums[p][1], -sums[p][2]))
        seed = self.seed * 1_000_003 + t  # suggest is pure: a fresh seed per call
        return tuple(suggest(self.space, self.history, self.settings, seed=seed, k=1)[0])

    def tell(self, params: tuple[int, ...], score: float) -> None:
        self.history.append(Observation(params=list(params), score=score, n=BATCH))


class OptunaTPE:
    def __init__(self, spec: ProblemSpec, seed: int, multivariate: bool):
        self.names = spec.names
        self.dists = {
            nm: CategoricalDistribution(list(range(n))) for nm, n in zip(spec.names, spec.space, strict=True)
        }
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=multivariate)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.trial: optuna.trial.Trial | None = None

    def ask(self) -> tuple[int, ...]:
        self.trial = self.study.ask(self.dists)
        return tuple(int(self.trial.params[nm]) for nm in self.names)

    def tell(self, params: tuple[int, ...], score: float) -> None:
        self.study.tell(self.trial, score)


class RandomSearch:
    def __init__(self, spec: ProblemSpec, seed: int):
        self.space = spec.space
        self.order = iter(np.random.default_rng([seed, 0xA11]).permutation(math.prod(spec.space)))

    def ask(self) -> tuple[int, ...]:
        return tuple(int(i) for i in np.unravel_index(next(self.order), self.space))

    def tell(self, params: tuple[int, ...], score: float) -> None:
        pass


def parse_variant(text: str) -> tuple[str, tuple[TPESettings, int]]:
    """'NAME:key=val,...' -> (NAME, (TPESettings(...), reeval)): a variant of ours for investigations.
    Keys are TPESettings fields, plus `reeval` (every reeval-th trial re-evaluates the current pick)."""
    name, _, body = text.partition(":")
    kwargs = {}
    for item in filter(None, body.split(",")):
        key, _, val = item.partition("=")
        kwargs[key.strip()] = float(val) if "." in val else int(val)
    reeval = int(kwargs.pop("reeval", WORKFLOW_REEVAL))
    return name, (TPESettings(**kwargs), reeval)


def make_optimizer(name: str, spec: ProblemSpec, seed: int, variants: dict[str, tuple[TPESettings, int]]):
    if name == "ours":
        return Ours(spec, seed)
    if name in variants:
        return Ours(spec, seed, *variants[name])
    if name == "optuna-mv":
        return OptunaTPE(spec, seed, multivariate=True)
    if name == "optuna-uni":
        return OptunaTPE(spec, seed, multivariate=False)
    if name == "random":
        return RandomSearch(spec, seed)
    raise ValueError(name)


# ------------------------------------------------------------------------------------------------ one run


def minibatch_score(seed: int, params: tuple[int, ...], visit: int, true: float) -> float:
    """Binomial(BATCH, true) / BATCH from a stream keyed by (instance, config, visit number): common random
    numbers, so every optimizer gets the same score for the same config's j-th evaluation."""
    return float(np.random.default_rng([seed, 0x0B5, visit, *params]).binomial(BATCH, true)) / BATCH


def run_one(
    problem: str, opt_name: str, seed: int, trials: int, variants: dict[str, tuple[TPESettings, int]]
) -> dict:
    """One optimizer on one problem instance: per-trial pick regret, tried regret, duplicate count."""
    spec = PROBLEMS[problem]
    truth = make_truth(spec, seed)
    optimum = float(truth.max())
    opt = make_optimizer(opt_name, spec, seed, variants)
    stats: dict[tuple[int, ...], list[float]] = {}  # params -> [sum of scores, count, first trial]
    pick_regret = np.empty(trials)
    tried_regret = np.empty(trials)
    dups = np.empty(trials, dtype=int)
    best_tried, n_dup, spent = -1.0, 0, 0.0
    tried_rows: list[tuple[int, ...]] = []
    tried_scores: list[float] = []
    model_regret: dict[int, float] = {}
    for t in range(trials):
        t0 = time.perf_counter()
        params = opt.ask()
        spent += time.perf_counter() - t0
        true = float(truth[params])
        visit = stats[params][1] if params in stats else 0
        score = minibatch_score(seed, params, visit, true)
        t0 = time.perf_counter()
        opt.tell(params, score)
        spent += time.perf_counter() - t0
        if params in stats:
            n_dup += 1
            stats[params][0] += score
            stats[params][1] += 1
        else:
            stats[params] = [score, 1, t]
        best_tried = max(best_tried, true)
        pick = max(stats, key=lambda p: (stats[p][0] / stats[p][1], stats[p][1], -stats[p][2]))
        pick_regret[t] = optimum - float(truth[pick])
        tried_regret[t] = optimum - best_tried
        dups[t] = n_dup
        tried_rows.append(params)
        tried_scores.append(score)
        if t + 1 in BUDGETS:
            model_pick = additive_pick(spec.space, tried_rows, tried_scores)
            model_regret[t + 1] = optimum - float(truth[model_pick])
    return {
        "problem": problem,
        "opt": opt_name,
        "seed": seed,
        "pick": pick_regret,
        "tried": tried_regret,
        "dups": dups,
        "model": model_regret,
        "ms_per_trial": 1000 * spent / trials,
        "optimum": optimum,
        "mean_true": float(truth.mean()),
    }


def additive_pick(
    space: tuple[int, ...], rows: list[tuple[int, ...]], scores: list[float]
) -> tuple[int, ...]:
    """Diagnostic pick rule: the tried config with the best prediction of a ridge fit of per-dimension
    main effects to every trial's score (one-hot features, lambda = 2). Not part of any optimizer."""
    mat = np.asarray(rows)
    offsets = np.concatenate(([0], np.cumsum(space[:-1])))
    x = np.zeros((len(mat), sum(space)))
    for d in range(len(space)):
        x[np.arange(len(mat)), mat[:, d] + offsets[d]] = 1.0
    y = np.asarray(scores)
    w = np.linalg.solve(x.T @ x + 2.0 * np.eye(x.shape[1]), x.T @ (y - y.mean()))
    return tuple(int(v) for v in mat[int(np.argmax(x @ w))])


def _run_star(args: tuple) -> dict:
    return run_one(*args)


# ------------------------------------------------------------------------------------------------- timing


def _random_history(space: tuple[int, ...], n: int, seed: int) -> tuple[list[list[int]], list[float]]:
    rng = np.random.default_rng([seed, 0x71])
    params = [[int(rng.integers(0, d)) for d in space] for _ in range(n)]
    truth = make_truth(PROBLEMS["b"], seed)
    scores = [float(rng.binomial(BATCH, truth[tuple(p)]) / BATCH) for p in params]
    return params, scores


def _ours_calls(n: int) -> tuple[Callable[[int], None], ...]:
    """Ours on the same history three ways: suggest() on prebuilt Observations; suggest_arrays() on
    prebuilt columns; the activity function on a SuggestInput (as the worker runs it: its history is the
    workflow's list of (params, score, n) tuples, turned into columns on every call)."""
    spec = PROBLEMS["b"]
    space = list(spec.space)
    params, scores = _random_history(spec.space, n, 1)
    history = [Observation(params=p, score=s, n=BATCH) for p, s in zip(params, scores, strict=True)]
    columns = (np.array(params, dtype=np.int64), np.array(scores), np.full(n, BATCH, dtype=np.int64))
    settings = TPESettings()
    inp = SuggestInput(
        space=space,
        history=[(p, s, BATCH) for p, s in zip(params, scores, strict=True)],
        tpe=settings,
        seed=0,
        k=1,
    )

    def observations(r: int) -> None:
        suggest(space, history, settings, seed=r, k=1)

    def arrays(r: int) -> None:
        suggest_arrays(space, *columns, settings, seed=r, k=1)

    def activity(r: int) -> None:
        inp.seed = r
        coro = suggest_candidates(inp)
        try:
            coro.send(None)  # the activity never awaits: it returns on the first step
        except StopIteration:
            return
        raise RuntimeError("suggest_candidates awaited something")

    return observations, arrays, activity


def _optuna_call(n: int, multivariate: bool = True, rebuild_every: int = 25) -> Callable[[], float]:
    """Seconds of one study.ask(distributions) (it samples every param) on a study holding n COMPLETE
    trials added with add_trial. The asked trial is told FAIL, which TPE ignores, so the model always
    sees exactly the n trials; the study is rebuilt every `rebuild_every` asks, so FAILs never pile up."""
    spec = PROBLEMS["b"]
    params, scores = _random_history(spec.space, n, 1)
    state: dict[str, object] = {"left": 0}

    def build() -> OptunaTPE:
        opt = OptunaTPE(spec, seed=0, multivariate=multivariate)
        for p, s in zip(params, scores, strict=True):
            trial = optuna.trial.create_trial(
                params=dict(zip(spec.names, p, strict=True)), distributions=opt.dists, value=s
            )
            opt.study.add_trial(trial)
        opt.study.tell(opt.study.ask(opt.dists), state=optuna.trial.TrialState.FAIL)  # warm-up ask
        return opt

    def call() -> float:
        if state["left"] == 0:
            state["opt"], state["left"] = build(), rebuild_every
        state["left"] -= 1
        opt = state["opt"]
        t0 = time.perf_counter()
        trial = opt.study.ask(opt.dists)
        _ = trial.params
        elapsed = time.perf_counter() - t0
        opt.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return elapsed

    return call


def time_suggestions(n: int, repeats: int) -> tuple[float, float, float, float]:
    """Median seconds per suggestion (ours suggest(), ours suggest_arrays(), ours activity path,
    optuna-mv), measured interleaved in rotating order so that load from other processes hits all alike."""
    calls = [*_ours_calls(n)]
    opt = _optuna_call(n)
    times: tuple[list[float], ...] = tuple([] for _ in range(len(calls) + 1))

    def timed(fn: Callable[[int], None]) -> Callable[[int], float]:
        def run(r: int) -> float:
            t0 = time.perf_counter()
            fn(r)
            return time.perf_counter() - t0

        return run

    runs = [*map(timed, calls), lambda r: opt()]
    for r in range(repeats + 3):
        for k in np.roll(np.arange(len(runs)), r):  # rotate the order: none always runs right after another
            times[k].append(runs[k](r))
    return tuple(statistics.median(ts[3:]) for ts in times)  # the first rounds warm caches


# ------------------------------------------------------------------------------------------------- report


def _at(runs: list[dict], field: str, t: int) -> list[float]:
    return [float(r[field][t - 1]) for r in runs]


def regret_tables(results: dict, opts: list[str], seeds: int) -> list[str]:
    out = []
    for key, spec in PROBLEMS.items():
        rows = []
        for opt in opts:
            runs = results[(key, opt)]
            row = [opt]
            row += [fmt_mean_se(_at(runs, "pick", t)) for t in BUDGETS]
            row += [fmt_mean_se(_at(runs, "tried", t)) for t in BUDGETS]
            row.append(" / ".join(f"{np.mean(_at(runs, 'dups', t)):.1f}" for t in BUDGETS))
            row.append(f"{np.mean([r['ms_per_trial'] for r in runs]):.2f}")
            rows.append(row)
        runs = results[(key, opts[0])]
        note = (
            f"{math.prod(spec.space):,} configs; over the {seeds} instances: true optimum "
            f"{fmt_mean_se([r['optimum'] for r in runs])}, "
            f"mean config {fmt_mean_se([r['mean_true'] for r in runs])}; "
            f"noise sd of one trial at p=0.5: {math.sqrt(0.25 / BATCH):.3f}. "
            "regret@T: pick = best observed mean; tried = best true value among tried. "
            "dups = trials that re-proposed an already-tried config (cumulative at 20 / 50 / 100). "
            "ms = optimizer time (ask + tell) per trial."
        )
        headers = ["optimizer"]
        headers += [f"regret@{t}" for t in BUDGETS] + [f"tried@{t}" for t in BUDGETS]
        headers += ["dups @20/50/100", "ms/trial"]
        out.append(table(f"{spec.title}: regret, mean ± SE over {seeds} seeds", headers, rows, note))
    return out


def model_pick_table(results: dict, opts: list[str], seeds: int) -> str:
    rows = []
    for key, spec in PROBLEMS.items():
        for opt in opts:
            runs = results[(key, opt)]
            rows.append(
                [f"{spec.key}: {opt}"]
                + [
                    f"{fmt_mean_se([r['model'][t] for r in runs])}  ({np.mean(_at(runs, 'pick', t)):.3f})"
                    for t in BUDGETS
                ]
            )
    return table(
        f"Diagnostic: regret when an additive model makes the pick, not the observed mean, {seeds} seeds",
        ["problem: optimizer"] + [f"T={t}: model pick (observed-mean pick)" for t in BUDGETS],
        rows,
        "Model pick = the tried config with the best prediction of a ridge fit of per-dimension main effects "
        "to all trials so far (the true quality is additive up to small interactions). It shows how much "
        "of the regret is selection noise (the winner's curse of picking the max of noisy minibatch means) "
        "rather than search.",
    )


def _paired(results: dict, key: str, opt: str, base: str, t: int) -> np.ndarray:
    return np.array(_at(results[(key, opt)], "pick", t)) - np.array(_at(results[(key, base)], "pick", t))


def paired_table(results: dict, opts: list[str], seeds: int, base: str = "optuna-mv") -> str:
    rows = []
    for key, spec in PROBLEMS.items():
        for opt in opts:
            if opt == base:
                continue
            row = [f"{spec.key}: {opt} − {base}"]
            for t in BUDGETS:
                d = _paired(results, key, opt, base, t)
                wins, ties = (d < -1e-12).sum(), (np.abs(d) <= 1e-12).sum()
                row.append(f"{fmt_mean_se(d)} ({wins}/{ties}/{len(d) - wins - ties})")
            rows.append(row)
    return table(
        f"Paired difference in pick regret vs {base} (negative = better than {base}), {seeds} seeds",
        ["comparison"] + [f"T={t}: diff ± SE (better/tie/worse)" for t in BUDGETS],
        rows,
    )


def timing_table(timing: dict, repeats: int) -> str:
    rows = []
    for n in TIMING_NS:
        ours_obs, ours_arrays, ours_activity, opt_mv = timing[n]
        rows.append(
            [
                f"{n:,}",
                f"{1000 * ours_obs:.3f}",
                f"{1000 * ours_arrays:.3f}",
                f"{1000 * ours_activity:.3f}",
                f"{1000 * opt_mv:.3f}",
                f"{opt_mv / ours_activity:.1f}x",
                f"{opt_mv / ours_arrays:.1f}x",
            ]
        )
    return table(
        f"(c) time per suggestion on the 6-dim space (27,000 configs), median of {repeats}",
        [
            "observations",
            "ours suggest() ms",
            "ours suggest_arrays() ms",
            "ours activity path ms",
            "optuna-mv ask() ms",
            "speed-up (activity)",
            "speed-up (suggest_arrays)",
        ],
        rows,
        "suggest() = on N prebuilt pydantic Observations; suggest_arrays() = on prebuilt "
        "(params, scores, ns) columns; activity path = the suggest_candidates activity on a SuggestInput "
        "holding the history as the workflow sends it, a list of (params, score, n) tuples: it builds the "
        "columns from the tuples (no Observation objects), then calls suggest_arrays. "
        "speed-up = optuna-mv / ours. Interleaved measurements.",
    )


def targets_table(results: dict, timing: dict) -> tuple[str, bool]:
    rows, all_met = [], True
    for key, spec in PROBLEMS.items():
        for t in BUDGETS:
            ours, ose = mean_se(_at(results[(key, "ours")], "pick", t))
            opt, pse = mean_se(_at(results[(key, "optuna-mv")], "pick", t))
            d, dse = mean_se(_paired(results, key, "ours", "optuna-mv", t))
            met = ours <= opt
            all_met &= met
            status = "met" if met else ("MISSED" + (" (within 2 SE)" if d <= 2 * dse else ""))
            rows.append(
                [
                    f"regret {spec.key} @{t} ≤ optuna-mv",
                    f"{ours:.4f} ± {ose:.4f}",
                    f"{opt:.4f} ± {pse:.4f}",
                    f"{d:+.4f} ± {dse:.4f}",
                    status,
                ]
            )
    _, _, ours, opt = timing[1000]  # ours = the activity path, columns built from the history tuples
    met = opt / ours >= 10
    all_met &= met
    rows.append(
        [
            "suggestion ≥10x faster @1,000 obs (activity path)",
            f"{1000 * ours:.3f} ms",
            f"{1000 * opt:.3f} ms",
            f"{opt / ours:.1f}x",
            "met" if met else "MISSED",
        ]
    )
    return table(
        "Targets", ["target", "ours", "optuna-mv", "ours − optuna (paired) / ratio", "status"], rows
    ), all_met


def regret_svg(results: dict, opts: list[str], trials: int, path: Path) -> None:
    panels = []
    xs = np.arange(1, trials + 1)
    for key, spec in PROBLEMS.items():
        series = {}
        for opt in opts:
            mat = np.stack([r["pick"] for r in results[(key, opt)]])
            se = mat.std(axis=0, ddof=1) / math.sqrt(len(mat)) if len(mat) > 1 else np.zeros(trials)
            series[opt] = (xs, mat.mean(axis=0), se)
        panels.append(
            {
                "title": spec.title,
                "xlabel": "trials",
                "ylabel": "mean regret of pick (± SE)",
                "series": series,
            }
        )
    n = len(next(iter(results.values())))
    svg_line_panels(
        str(path),
        panels,
        title=f"Regret of the best-by-observed-mean config vs trials (mean ± SE, {n} seeds)",
    )


# --------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=200, help="problem instances (>= 50; default 200)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 4 seeds, few timing repeats")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes for the regret runs")
    ap.add_argument("--trials", type=int, default=max(BUDGETS))
    ap.add_argument("--repeats", type=int, default=201, help="timing repeats per point (median)")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        help="extra run of ours, NAME:key=val,... with TPESettings keys and reeval=r "
        "(every r-th trial re-evaluates the current pick), e.g. g10:gamma=0.1",
    )
    ap.add_argument("--no-univariate", action="store_true", help="skip optuna-uni")
    ap.add_argument("--no-timing", action="store_true", help="skip part (c) and the targets table")
    ap.add_argument(
        "--name", default="tpe", help="results file stem: results/NAME.md, results/NAME_regret.svg"
    )
    ap.add_argument("--no-write", action="store_true", help="print only, do not write benchmarks/results")
    args = ap.parse_args(argv)
    if not args.name.startswith("tpe"):
        ap.error("--name must start with 'tpe'")
    seeds = 4 if args.quick else args.seeds
    repeats = 5 if args.quick else args.repeats
    variants = dict(parse_variant(v) for v in args.variant)
    opts = [o for o in BASE_OPTIMIZERS if not (args.no_univariate and o == "optuna-uni")] + list(variants)
    started = time.perf_counter()

    tasks = [(p, o, s, args.trials, variants) for p in PROBLEMS for o in opts for s in range(seeds)]
    results: dict[tuple[str, str], list[dict]] = {(p, o): [] for p in PROBLEMS for o in opts}
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            for r in pool.map(_run_star, tasks, chunksize=4):
                results[(r["problem"], r["opt"])].append(r)
    else:
        for task in tasks:
            r = run_one(*task)
            results[(r["problem"], r["opt"])].append(r)
    regret_time = time.perf_counter() - started

    t0 = time.perf_counter()
    timing = {} if args.no_timing else {n: time_suggestions(n, repeats) for n in TIMING_NS}
    timing_time = time.perf_counter() - t0

    sections = regret_tables(results, opts, seeds)
    sections.append(paired_table(results, opts, seeds))
    sections.append(model_pick_table(results, opts, seeds))
    if timing:
        sections.append(timing_table(timing, repeats))
        sections.append(targets_table(results, timing)[0])
    wall = time.perf_counter() - started
    footer = (
        f"wall time {wall:.1f} s (regret runs {regret_time:.1f} s on {args.jobs} processes, "
        f"timing {timing_time:.1f} s)"
    )
    text = "\n".join(sections)
    print(text)
    print(footer)

    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        info = machine_info()
        cmd = "python benchmarks/tpe.py " + " ".join(sys.argv[1:] if argv is None else argv)
        header = [
            "# TPE benchmark: ours vs Optuna TPESampler vs random search",
            "",
            f"Command: `{cmd.strip()}`",
            "",
            f"Machine: nproc={info['nproc']}, {info['cpu']}, {info['os']}; python {info['python']}, "
            f"optuna {optuna.__version__}, numpy {np.__version__}. (Shared machine: other jobs may have run "
            "concurrently; timings are medians of interleaved measurements.)",
            "",
            f"Settings: batch={BATCH} (observed = Binomial(batch, true)/batch), k=1, {seeds} seeds, "
            f"{args.trials} trials; ours = default `TPESettings()` {TPESettings().model_dump()}, "
            f"reeval={WORKFLOW_REEVAL} (as the workflow runs it)"
            + "".join(f"; {n} = {s.model_dump()}, reeval={r}" for n, (s, r) in variants.items())
            + "; Optuna = `TPESampler(seed=seed, multivariate=True|False)`, its other defaults "
            "(n_startup_trials=10, n_ei_candidates=24, constant_liar=True in 5.0).",
            "",
            f"Plot: [{args.name}_regret.svg]({args.name}_regret.svg)"
            + (
                "; settings ablation of ours: [tpe_ablation.md](tpe_ablation.md)"
                if args.name == "tpe" and (RESULTS / "tpe_ablation.md").exists()
                else ""
            ),
            "",
            f"{footer}.",
            "",
        ]
        (RESULTS / f"{args.name}.md").write_text("\n".join(header) + "\n" + text)
        regret_svg(results, opts, args.trials, RESULTS / f"{args.name}_regret.svg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
