"""Promotion evidence: does a challenger beat the incumbent on everything both were scored on? Pure functions.

Two sources of paired differences (challenger - incumbent, per seed both scored):
- validation seeds: an independent sample, each seed counts fully;
- minibatch (online) seeds: the challenger was picked as the leader *because* of its minibatch scores, so
  they are optimistic (the winner's curse); each counts as `MINIBATCH_WEIGHT` of a validation seed.

The posterior over the difference of means delta is normal: flat prior on delta, per-seed differences
d_i ~ N(delta, sigma^2 / w_i), so delta | d ~ N(weighted mean, sigma^2 / sum w). sigma^2 is the weighted
spread of the differences plus `PRIOR_SEEDS` pseudo-seeds of variance `PRIOR_VARIANCE`, so a handful of
identical differences cannot claim certainty. The challenger is promoted when P(delta > 0) > `THRESHOLD`.

THRESHOLD is 0.5 on purpose: with validation evidence only, it is exactly the rule it replaces (the
challenger's mean is higher on the shared validation seeds; a tie keeps the incumbent). What changes is that
a validation sample of 17 rows can no longer outvote 30 minibatch seeds on its own.
"""

from __future__ import annotations

from math import erf, sqrt

from pydantic import BaseModel

MINIBATCH_WEIGHT = 0.5
PRIOR_SEEDS = 1.0
PRIOR_VARIANCE = 0.25  # of a difference of two 0/1 scores that disagree on half the seeds
THRESHOLD = 0.5


class SourceEvidence(BaseModel):
    """One source's paired differences: on how many shared seeds, their mean, the weight of each seed."""

    n: int
    mean_diff: float | None
    weight: float


class Evidence(BaseModel):
    """What a promotion decided from, as the promotion event reports it."""

    validation: SourceEvidence
    minibatch: SourceEvidence
    posterior_mean: float | None
    posterior_sd: float | None
    p_better: float  # P(challenger's mean > incumbent's | all paired evidence)
    threshold: float
    promote: bool


def paired_diffs(challenger: dict[int, float], incumbent: dict[int, float]) -> list[float]:
    """challenger - incumbent on every seed both scored, in seed order."""
    return [challenger[s] - incumbent[s] for s in sorted(challenger) if s in incumbent]


def _source(diffs: list[float], weight: float) -> SourceEvidence:
    return SourceEvidence(n=len(diffs), mean_diff=sum(diffs) / len(diffs) if diffs else None, weight=weight)


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + erf(z / sqrt(2.0)))


def posterior(weighted: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(mean, sd) of the normal posterior over delta from (difference, weight) pairs; None without any."""
    total = sum(w for _, w in weighted)
    if total <= 0:
        return None
    mean = sum(d * w for d, w in weighted) / total
    spread = sum(w * (d - mean) ** 2 for d, w in weighted)
    variance = (spread + PRIOR_SEEDS * PRIOR_VARIANCE) / (total + PRIOR_SEEDS)
    return mean, sqrt(variance / total)


def weigh(
    validation: list[float],
    minibatch: list[float],
    minibatch_weight: float = MINIBATCH_WEIGHT,
    threshold: float = THRESHOLD,
) -> Evidence:
    """Decide from the paired differences of both sources. No shared seed at all: the incumbent stays."""
    weighted = [(d, 1.0) for d in validation] + [(d, minibatch_weight) for d in minibatch]
    post = posterior(weighted)
    if post is None:
        p_better, mean, sd = 0.0, None, None
    else:
        mean, sd = post
        p_better = _normal_cdf(mean / sd)
    return Evidence(
        validation=_source(validation, 1.0),
        minibatch=_source(minibatch, minibatch_weight),
        posterior_mean=mean,
        posterior_sd=sd,
        p_better=p_better,
        threshold=threshold,
        promote=p_better > threshold,
    )


def decide(
    challenger_validation: dict[int, float],
    incumbent_validation: dict[int, float],
    challenger_minibatch: dict[int, float],
    incumbent_minibatch: dict[int, float],
) -> Evidence:
    """The promotion decision from per-seed scores: each source paired on the seeds both scored."""
    return weigh(
        paired_diffs(challenger_validation, incumbent_validation),
        paired_diffs(challenger_minibatch, incumbent_minibatch),
    )
