"""Aggregates over the trial history: per-candidate scores, paired lift over the baseline. Pure functions."""

from __future__ import annotations

from mipro.job_models import CandidateSummary, JobState
from mipro.types import CandidateChoice


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def lift_stats(
    cache: dict[int, float], baseline: dict[int, float], seeds: list[int] | None = None
) -> tuple[float | None, int]:
    """Mean paired difference candidate - baseline over seeds both have scores for, and how many seeds."""
    pool = seeds if seeds is not None else sorted(cache)
    diffs = [cache[s] - baseline[s] for s in pool if s in cache and s in baseline]
    return mean(diffs), len(diffs)


def candidate_summaries(
    state: JobState,
    baseline_hash: str,
    baseline_key: str,
    tried: list[tuple[CandidateChoice, str]] | None = None,
    online_cache: dict[str, dict[int, float]] | None = None,
) -> list[CandidateSummary]:
    """One summary per distinct candidate tried (and the baseline), in order of first appearance.
    `tried` (choice, content hash) and `online_cache` stand in for the state's trials and scores when
    given (a view that includes trials in flight)."""
    scores = state.online_cache if online_cache is None else online_cache
    base_cache = scores.get(baseline_hash, {})
    seen: dict[str, CandidateSummary] = {}
    for choice, candidate_hash in (
        tried if tried is not None else [(t.choice, t.candidate_hash) for t in state.trials]
    ):
        if choice.key in seen:
            continue
        cache = scores.get(candidate_hash, {})
        lift, _ = lift_stats(cache, base_cache)
        seen[choice.key] = CandidateSummary(
            key=choice.key,
            choice=choice,
            candidate_hash=candidate_hash,
            demo_counts=[len(state.demo_sets[i][d]) for i, d in enumerate(choice.demo_set)],
            minibatch_score=mean(list(cache.values())),
            minibatch_n=len(cache),
            paired_lift=lift,
            validation_score=state.validation.get(choice.key),
        )
    if baseline_key not in seen and state.instructions:
        n = len(state.instructions)
        choice = CandidateChoice(instruction=[0] * n, demo_set=[0] * n)
        seen[baseline_key] = CandidateSummary(
            key=baseline_key,
            choice=choice,
            candidate_hash=baseline_hash,
            demo_counts=[0] * n,
            minibatch_score=mean(list(base_cache.values())),
            minibatch_n=len(base_cache),
            paired_lift=0.0 if base_cache else None,
            validation_score=state.validation.get(baseline_key),
        )
    return list(seen.values())


def instruction_scores(state: JobState, stage: int) -> list[tuple[str, float]]:
    """Each tried instruction of a stage with the mean minibatch score of the candidates using it."""
    per_instruction: dict[int, list[float]] = {}
    for trial in state.trials:
        if trial.minibatch_score is not None:
            per_instruction.setdefault(trial.choice.instruction[stage], []).append(trial.minibatch_score)
    return [(state.instructions[stage][k], sum(v) / len(v)) for k, v in sorted(per_instruction.items())]


def ranks(values: list[float]) -> list[float]:
    """1-based ranks, ties sharing the mean of their ranks."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rank correlation (Pearson on tie-averaged ranks); None under 3 pairs or a constant side."""
    if len(xs) != len(ys) or len(xs) < 3:
        return None
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return None if vx == 0 or vy == 0 else cov / (vx * vy) ** 0.5
