"""Tree-structured Parzen Estimator (TPE) over purely categorical spaces, numpy only.

A configuration picks one index per dimension (per stage: an instruction and a demo set). `suggest`
is a pure function of (space, history, settings, seed): the workflow's trial history is the whole
optimizer state, so a stateless activity can call it and a replay gets the very same answer.

1. Repeated observations of the same params are merged (n-weighted mean, summed n).
2. Noise: each mean is shrunk toward the global mean, empirical-Bayes style, with a pseudo-count
   m = per-rollout variance / between-config variance: a mean over few rollouts moves more. Each
   observation then counts in the densities with its reliability n / (n + m), rescaled to average 1.
3. Merged observations are ranked by shrunk mean; the best max(1, ceil(gamma * N)) are "good".
4. Per dimension, categorical densities l (good) and g (the rest) are weighted counts plus `alpha`
   pseudo-counts per category plus `prior_weight` observations of the uniform distribution.
   l(x) and g(x) are products over dimensions, so log l(x) - log g(x) is a sum of per-dim ratios.
5. Candidates are every untried config when the space is small (<= 4096 configs), otherwise
   max(n_candidates, k) draws from l. The top k by log l - log g are kept (ties broken by the
   seeded RNG) and each slot is, with probability `epsilon`, swapped for a random untried config.
With no observation, or fewer distinct observed configs than `n_startup_trials`: k random untried.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field, model_validator

EXACT_SCORING_MAX_CONFIGS = 4096
_MAX_CONFIGS = 2**62  # configs are encoded as int64 mixed-radix codes
_MAX_SHRINK = 1e4  # cap of the shrinkage pseudo-count when the spread is all noise
_PARAMS, _SCORE, _N = (operator.attrgetter(name) for name in ("params", "score", "n"))


class TPESettings(BaseModel):
    """Knobs of `suggest`. Defaults suit MIPRO spaces (2-6 dims of 3-12 choices)."""

    gamma: float = Field(0.25, gt=0.0, le=1.0)  # fraction of observations in the "good" group (>= 1)
    n_candidates: int = Field(32, ge=1)  # draws from l(x) per suggestion when the space is large
    n_startup_trials: int = Field(0, ge=0)  # fewer distinct observed configs: uniform random picks
    epsilon: float = Field(0.1, ge=0.0, le=1.0)  # per-slot probability of a random untried config
    alpha: float = Field(1.0, ge=0.0)  # Dirichlet pseudo-count added to every category
    prior_weight: float = Field(1.0, ge=0.0)  # weight of the uniform prior, in observations

    @model_validator(mode="after")
    def _some_smoothing(self) -> TPESettings:
        if self.alpha + self.prior_weight <= 0:
            raise ValueError("alpha + prior_weight must be > 0, otherwise densities have zeros")
        return self


class Observation(BaseModel):
    """The mean score (higher is better) of one config over n rollouts."""

    params: list[int]
    score: float = Field(allow_inf_nan=False)
    n: int = Field(1, ge=1)


@dataclass(frozen=True)
class _Grid:
    """The space as mixed-radix integer codes (code = params @ strides) and flat per-dim tables."""

    dims: np.ndarray
    strides: np.ndarray
    offsets: np.ndarray  # where each dimension starts in a flat table of all categories
    total: int

    @classmethod
    def of(cls, space: Sequence[int]) -> _Grid:
        if len(space) == 0:
            raise ValueError("space must have at least one dimension")
        for d, size in enumerate(space):
            if size < 1:
                raise ValueError(f"space dimension {d} has {size} choices, needs at least 1")
        total = math.prod(space)
        if total >= _MAX_CONFIGS:
            raise ValueError(f"space has {total} configs, more than the supported {_MAX_CONFIGS}")
        dims = np.asarray(space, dtype=np.int64)
        strides = np.concatenate(([1], np.cumprod(dims[:-1]))).astype(np.int64)
        return cls(dims, strides, np.concatenate(([0], np.cumsum(dims[:-1]))).astype(np.int64), total)

    def matrix(self, rows: Sequence[Sequence[int]], what: str) -> np.ndarray:
        """Validated (len(rows), n_dims) int64 matrix of the rows."""
        width = len(self.dims)
        if set(map(len, rows)) - {width}:
            i = next(i for i, row in enumerate(rows) if len(row) != width)
            raise ValueError(f"{what}[{i}] has {len(rows[i])} params, the space has {width} dims")
        flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=len(rows) * width)
        mat = flat.reshape(len(rows), width)
        bad = (mat < 0) | (mat >= self.dims)
        if bad.any():
            i, d = np.argwhere(bad)[0]
            raise ValueError(
                f"{what}[{i}] index {mat[i, d]} is out of range for dimension {d} (0..{self.dims[d] - 1})"
            )
        return mat

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return (codes[:, None] // self.strides) % self.dims

    def enumerable(self, n_blocked: int) -> bool:
        """Small enough to list every config (or so crowded that rejection sampling would crawl)."""
        return self.total <= max(EXACT_SCORING_MAX_CONFIGS, 4 * n_blocked)

    def free(self, blocked: np.ndarray) -> np.ndarray:
        return np.setdiff1d(np.arange(self.total, dtype=np.int64), blocked, assume_unique=True)

    def random_untried(self, rng: np.random.Generator, blocked: np.ndarray, count: int) -> np.ndarray:
        """Up to `count` distinct uniformly random codes, in random order, none in sorted `blocked`."""
        if self.enumerable(len(blocked) + count):
            return rng.permutation(self.free(blocked))[:count]
        picked = np.empty(0, dtype=np.int64)
        while len(picked) < count:  # over 3/4 of the space is free here, so this ends fast
            draw = rng.integers(0, self.total, size=2 * count + 8, dtype=np.int64)
            picked = _unique_in_order(np.concatenate((picked, draw[~_member(draw, blocked)])))
        return picked[:count]


def _member(codes: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which codes are in `sorted_set` (sorted, unique): a binary search, cheaper than np.isin."""
    if len(sorted_set) == 0:
        return np.zeros(len(codes), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, codes), len(sorted_set) - 1)
    return sorted_set[pos] == codes


def _unique_in_order(codes: np.ndarray) -> np.ndarray:
    _, first = np.unique(codes, return_index=True)
    return codes[np.sort(first)]


@dataclass(frozen=True)
class _Merged:
    """Distinct observed configs: codes (sorted), rows, n-weighted mean score, total rollouts."""

    codes: np.ndarray
    cols: np.ndarray
    mean: np.ndarray
    n: np.ndarray


def _merge(mat: np.ndarray, codes: np.ndarray, scores: np.ndarray, ns: np.ndarray) -> _Merged:
    """Distinct configs (sorted by code) with their n-weighted mean score and total rollouts."""
    uniq, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    n = np.bincount(inverse, weights=ns, minlength=len(uniq))
    mean = np.bincount(inverse, weights=scores * ns, minlength=len(uniq)) / n
    return _Merged(uniq, mat[first], mean, n)


def _shrinkage(mean: np.ndarray, n: np.ndarray, center: float) -> float:
    """Empirical-Bayes pseudo-count m = per-rollout noise variance / between-config variance."""
    if len(mean) < 2:
        return 0.0
    low, high = min(0.0, float(mean.min())), max(1.0, float(mean.max()))
    noise = (center - low) * (high - center)  # variance bound of one rollout scored in [low, high]
    spread = float(np.mean((mean - center) ** 2) - noise * np.mean(1.0 / n))
    return _MAX_SHRINK if spread <= noise / _MAX_SHRINK else noise / spread


def _split(obs: _Merged, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Good-group mask (by shrunk mean, ties by code) and per-observation density weights."""
    center = float(obs.mean @ obs.n / obs.n.sum())
    m = _shrinkage(obs.mean, obs.n, center)
    shrunk = (obs.n * obs.mean + m * center) / (obs.n + m)
    reliability = obs.n / (obs.n + m)
    good = np.zeros(len(shrunk), dtype=bool)
    good[np.argsort(-shrunk, kind="stable")[: max(1, math.ceil(gamma * len(shrunk)))]] = True
    return good, reliability / reliability.mean()


def _density(grid: _Grid, cols: np.ndarray, weights: np.ndarray, s: TPESettings) -> np.ndarray:
    """Smoothed per-dimension categorical probabilities of the weighted rows, as one flat table."""
    sizes = np.repeat(grid.dims, grid.dims)
    flat = (cols + grid.offsets).ravel()
    counts = np.bincount(flat, np.repeat(weights, len(grid.dims)), int(grid.dims.sum()))
    p = counts + (s.alpha + s.prior_weight / sizes)
    return p / np.repeat(np.add.reduceat(p, grid.offsets), grid.dims)


def _sample(rng: np.random.Generator, grid: _Grid, probs: np.ndarray, count: int) -> np.ndarray:
    """`count` rows drawn from the product of the per-dimension distributions (inverse CDF).

    Each dimension's probabilities sum to 1, so in the flat cumulative sum dimension d spans (d, d+1].
    """
    targets = rng.random((count, len(grid.dims))) + np.arange(len(grid.dims))
    cols = np.searchsorted(np.cumsum(probs), targets, side="right") - grid.offsets
    return np.clip(cols, 0, grid.dims - 1)


def _candidates(
    rng: np.random.Generator, grid: _Grid, l_probs: np.ndarray, blocked: np.ndarray, draws: int, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Untried candidate codes and their rows: all of them if few, else distinct draws from l."""
    if grid.enumerable(len(blocked) + count):
        codes = grid.free(blocked)
        return codes, grid.decode(codes)
    cols = _sample(rng, grid, l_probs, max(draws, count))
    codes = cols @ grid.strides
    _, first = np.unique(codes, return_index=True)
    keep = np.sort(first)
    keep = keep[~_member(codes[keep], blocked)]
    return codes[keep], cols[keep]


def _model_picks(
    rng: np.random.Generator, grid: _Grid, obs: _Merged, blocked: np.ndarray, s: TPESettings, count: int
) -> np.ndarray:
    """The top `count` untried codes by log l - log g, topped up with random untried ones."""
    good, weights = _split(obs, s.gamma)
    l_probs = _density(grid, obs.cols[good], weights[good], s)
    log_ratio = np.log(l_probs / _density(grid, obs.cols[~good], weights[~good], s))
    codes, cols = _candidates(rng, grid, l_probs, blocked, s.n_candidates, count)
    score = np.round(log_ratio[cols + grid.offsets].sum(axis=1), 9)
    picks = codes[np.lexsort((rng.random(len(codes)), -score))[:count]]
    if len(picks) < count:
        extra = grid.random_untried(rng, np.union1d(blocked, picks), count - len(picks))
        picks = np.concatenate((picks, extra))
    return picks


def _explore(
    rng: np.random.Generator, grid: _Grid, picks: np.ndarray, blocked: np.ndarray, epsilon: float
) -> np.ndarray:
    """Swap each slot, with probability epsilon, for a random config untried and not picked."""
    slots = np.flatnonzero(rng.random(len(picks)) < epsilon)
    if len(slots) == 0:
        return picks
    fresh = grid.random_untried(rng, np.union1d(blocked, picks), len(slots))
    out = picks.copy()
    out[slots[: len(fresh)]] = fresh
    return out


def suggest(
    space: list[int],
    history: list[Observation],
    settings: TPESettings,
    seed: int,
    k: int,
    exclude: list[list[int]] | None = None,
) -> list[list[int]]:
    """Return up to k distinct configurations, ranked best-first by l(x)/g(x), none in history or exclude."""
    grid = _Grid.of(space)
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    mat = grid.matrix(list(map(_PARAMS, history)), "history")
    scores = np.fromiter(map(_SCORE, history), dtype=float, count=len(history))
    obs = _merge(mat, mat @ grid.strides, scores, np.fromiter(map(_N, history), float, len(history)))
    blocked = obs.codes
    if exclude:
        blocked = np.union1d(blocked, grid.matrix(exclude, "exclude") @ grid.strides)
    count = min(k, grid.total - len(blocked))
    if count <= 0:
        return []
    rng = np.random.default_rng(seed % 2**64)
    if len(obs.codes) == 0 or len(obs.codes) < settings.n_startup_trials:
        picks = grid.random_untried(rng, blocked, count)
    else:
        picks = _model_picks(rng, grid, obs, blocked, settings, count)
        picks = _explore(rng, grid, picks, blocked, settings.epsilon)
    return grid.decode(picks).tolist()
