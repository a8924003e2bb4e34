"""Tree-structured Parzen Estimator (TPE) over purely categorical spaces, numpy only.

A configuration picks one index per dimension (per stage: an instruction and a demo set). `suggest`
is a pure function of (space, history, settings, seed): the workflow's trial history is the whole
optimizer state, so a stateless activity can call it and a replay gets the very same answer.
`suggest_arrays` is the same function on a columnar history (params matrix, scores, ns), without one
Python object per observation; `suggest` converts its Observations and gives identical results.

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

import functools
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
    sizes: np.ndarray  # per category: the size of its dimension
    offsets2: np.ndarray  # where each dimension starts in two flat tables side by side (l, then g)
    sizes2: np.ndarray  # per dimension of the two tables: its size
    dim_index: np.ndarray  # 0, 1, ..., n_dims - 1
    last: np.ndarray  # per dimension: its last index (dims - 1)

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
        return _grid(tuple(map(int, space)))

    @property
    def n_categories(self) -> int:
        return len(self.sizes)

    def matrix(self, rows: Sequence[Sequence[int]], what: str) -> np.ndarray:
        """Validated (len(rows), n_dims) int64 matrix of the rows."""
        return self.check(params_matrix(rows, len(self.dims), what), what)

    def check(self, mat: np.ndarray, what: str) -> np.ndarray:
        """`mat` as a validated (N, n_dims) int64 matrix (an empty array of any shape is 0 rows)."""
        mat = np.asarray(mat)
        width = len(self.dims)
        if mat.size == 0 and (mat.ndim == 1 or (mat.ndim == 2 and mat.shape[1] in (0, width))):
            return np.empty((0, width), dtype=np.int64)
        if mat.ndim != 2 or mat.shape[1] != width:
            raise ValueError(f"{what} has shape {mat.shape}, the space needs (N, {width})")
        if mat.dtype.kind not in "iu":
            raise ValueError(f"{what} must hold integers, got dtype {mat.dtype}")
        mat = mat.astype(np.int64, copy=False)
        if (mat.view(np.uint64) >= self.dims).any():  # as unsigned, a negative index is huge too
            i, d = np.argwhere((mat < 0) | (mat >= self.dims))[0]
            raise ValueError(
                f"{what}[{i}] index {mat[i, d]} is out of range for dimension {d} (0..{self.dims[d] - 1})"
            )
        return mat

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return (codes[:, None] // self.strides) % self.dims

    def order(self, codes: np.ndarray) -> np.ndarray:
        """A stable argsort of codes of this grid (a radix sort when the codes fit in 16 bits)."""
        if self.total <= 2**16:
            return np.argsort(codes.astype(np.uint16), kind="stable")
        return np.argsort(codes, kind="stable")

    def enumerable(self, n_blocked: int) -> bool:
        """Small enough to list every config (or so crowded that rejection sampling would crawl)."""
        return self.total <= max(EXACT_SCORING_MAX_CONFIGS, 4 * n_blocked)

    def free(self, blocked: np.ndarray) -> np.ndarray:
        """Sorted codes of every config not in `blocked` (codes of this grid)."""
        mask = np.ones(self.total, dtype=bool)
        mask[blocked] = False
        return np.flatnonzero(mask)

    def random_untried(self, rng: np.random.Generator, blocked: np.ndarray, count: int) -> np.ndarray:
        """Up to `count` distinct uniformly random codes, in random order, none in sorted `blocked`."""
        if self.enumerable(len(blocked) + count):
            return rng.permutation(self.free(blocked))[:count]
        picked = np.empty(0, dtype=np.int64)
        while len(picked) < count:  # over 3/4 of the space is free here, so this ends fast
            draw = rng.integers(0, self.total, size=2 * count + 8, dtype=np.int64)
            picked = _unique_in_order(self, np.concatenate((picked, draw[~_member(draw, blocked)])))
        return picked[:count]


@functools.lru_cache(maxsize=64)
def _grid(space: tuple[int, ...]) -> _Grid:
    """The (immutable: nothing writes to its arrays) grid of a validated space, cached per space."""
    dims = np.asarray(space, dtype=np.int64)
    strides = np.concatenate(([1], np.cumprod(dims[:-1]))).astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(dims[:-1]))).astype(np.int64)
    n_cat = int(dims.sum())
    sizes = np.repeat(dims, dims)
    offsets2, sizes2 = np.concatenate((offsets, offsets + n_cat)), np.concatenate((dims, dims))
    dim_index = np.arange(len(dims))
    last = dims - 1
    grid = _Grid(dims, strides, offsets, math.prod(space), sizes, offsets2, sizes2, dim_index, last)
    for arr in (dims, strides, offsets, sizes, offsets2, sizes2, dim_index, last):
        arr.flags.writeable = False
    return grid


def params_matrix(rows: Sequence[Sequence[int]], width: int, what: str = "history") -> np.ndarray:
    """(len(rows), width) integer matrix of rows of `width` ints each (ranges are checked by the suggest).

    One pass over the flattened rows, cheaper than np.array on a list of lists; a row of the wrong
    length is named in the error. Indices in 0..255 (any MIPRO space) are read as bytes, which is
    about twice as fast as np.fromiter; other values fall back to it."""
    if set(map(len, rows)) - {width}:
        i = next(i for i, row in enumerate(rows) if len(row) != width)
        raise ValueError(f"{what}[{i}] has {len(rows[i])} params, the space has {width} dims")
    try:
        flat = np.frombuffer(bytearray(itertools.chain.from_iterable(rows)), dtype=np.uint8)
    except (ValueError, TypeError):  # an index outside 0..255, or not an int
        flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=len(rows) * width)
    return flat.reshape(len(rows), width)


def _member(codes: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which codes are in `sorted_set` (sorted, unique): a binary search, cheaper than np.isin."""
    if len(sorted_set) == 0:
        return np.zeros(len(codes), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_set, codes), len(sorted_set) - 1)
    return sorted_set[pos] == codes


def _groups(grid: _Grid, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A stable argsort of the codes and, in that order, which entries start a new distinct code."""
    order = grid.order(codes)
    ordered = codes[order]
    new = np.empty(len(codes), dtype=bool)
    new[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    return order, new


def _unique_in_order(grid: _Grid, codes: np.ndarray) -> np.ndarray:
    order, new = _groups(grid, codes)
    return codes[np.sort(order[new])]


@dataclass(frozen=True)
class _Merged:
    """Distinct observed configs: codes (sorted), rows, n-weighted mean score, total rollouts."""

    codes: np.ndarray
    cols: np.ndarray
    mean: np.ndarray
    n: np.ndarray


def _merge(grid: _Grid, mat: np.ndarray, codes: np.ndarray, scores: np.ndarray, ns: np.ndarray) -> _Merged:
    """Distinct configs (sorted by code) with their n-weighted mean score and total rollouts.

    Sums are np.bincount's (zero, then += in observation order), so the all-distinct shortcut adds 0.0
    to reproduce them bit for bit (-0.0 becomes 0.0)."""
    order, new = _groups(grid, codes)
    starts = np.flatnonzero(new)
    first = order[starts]
    weighted = scores * ns
    if len(starts) == len(codes):  # every config observed once (the workflow merges its history)
        n = ns[order] + 0.0
        mean = (weighted[order] + 0.0) / n
    else:
        inverse = np.empty(len(codes), dtype=np.intp)
        inverse[order] = np.cumsum(new) - 1
        n = np.bincount(inverse, weights=ns, minlength=len(starts))
        mean = np.bincount(inverse, weights=weighted, minlength=len(starts)) / n
    return _Merged(codes[first], mat.take(first, axis=0), mean, n)  # take: 4x faster than mat[first]


def _shrinkage(mean: np.ndarray, n: np.ndarray, center: float) -> float:
    """Empirical-Bayes pseudo-count m = per-rollout noise variance / between-config variance."""
    if len(mean) < 2:
        return 0.0
    low, high = min(0.0, float(mean.min())), max(1.0, float(mean.max()))
    noise = (center - low) * (high - center)  # variance bound of one rollout scored in [low, high]
    spread = float(_mean((mean - center) ** 2) - noise * _mean(1.0 / n))
    return _MAX_SHRINK if spread <= noise / _MAX_SHRINK else noise / spread


def _split(obs: _Merged, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Good-group mask (by shrunk mean, ties by code) and per-observation density weights."""
    center = float(obs.mean @ obs.n / obs.n.sum())
    m = _shrinkage(obs.mean, obs.n, center)
    total = obs.n + m
    shrunk = (obs.n * obs.mean + m * center) / total
    reliability = obs.n / total
    return _top(shrunk, max(1, math.ceil(gamma * len(shrunk)))), reliability / _mean(reliability)


def _mean(values: np.ndarray) -> float:
    """np.mean of a 1-d float array, bit for bit (the same pairwise sum over the same count)."""
    return np.add.reduce(values) / len(values)


def _top(values: np.ndarray, count: int) -> np.ndarray:
    """Mask of the `count` largest values, ties to the lower index: the head of a stable argsort of -values.

    Above a few dozen values, a partition finds the count-th largest and only ties at it need an order."""
    neg = -values
    if len(values) <= 64:
        top = np.zeros(len(values), dtype=bool)
        top[np.argsort(neg, kind="stable")[:count]] = True
        return top
    kth = np.partition(neg, count - 1)[count - 1]
    top = neg < kth
    top[np.flatnonzero(neg == kth)[: count - np.count_nonzero(top)]] = True
    return top


def _densities(
    grid: _Grid, cols: np.ndarray, weights: np.ndarray, good: np.ndarray, s: TPESettings
) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed per-dimension categorical probabilities of the good rows (l) and of the others (g).

    Each is one flat table of all categories; both come from one bincount over two tables side by side
    (a row's weight goes to l's table or to g's, in row order, so each sum is the one of its own rows)."""
    n_cat = grid.n_categories
    flat = (cols + grid.offsets + np.where(good, 0, n_cat)[:, None]).ravel()
    counts = np.bincount(flat, np.repeat(weights, len(grid.dims)), 2 * n_cat)
    p = (counts.reshape(2, n_cat) + (s.alpha + s.prior_weight / grid.sizes)).ravel()
    p /= np.repeat(np.add.reduceat(p, grid.offsets2), grid.sizes2)
    return p[:n_cat], p[n_cat:]


def _sample(rng: np.random.Generator, grid: _Grid, probs: np.ndarray, count: int) -> np.ndarray:
    """`count` rows drawn from the product of the per-dimension distributions (inverse CDF).

    Each dimension's probabilities sum to 1, so in the flat cumulative sum dimension d spans (d, d+1].
    """
    targets = rng.random((count, len(grid.dims))) + grid.dim_index
    cols = np.searchsorted(np.cumsum(probs), targets, side="right") - grid.offsets
    return np.minimum(np.maximum(cols, 0), grid.last)  # np.clip, at a third of its overhead


def _candidates(
    rng: np.random.Generator, grid: _Grid, l_probs: np.ndarray, blocked: np.ndarray, draws: int, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Untried candidate codes and their rows: all of them if few, else distinct draws from l."""
    if grid.enumerable(len(blocked) + count):
        codes = grid.free(blocked)
        return codes, grid.decode(codes)
    cols = _sample(rng, grid, l_probs, max(draws, count))
    codes = cols @ grid.strides
    order, new = _groups(grid, codes)
    keep = np.sort(order[new])  # first draw of each distinct code, in draw order
    keep = keep[~_member(codes[keep], blocked)]
    return codes[keep], cols[keep]


def _model_picks(
    rng: np.random.Generator, grid: _Grid, obs: _Merged, blocked: np.ndarray, s: TPESettings, count: int
) -> np.ndarray:
    """The top `count` untried codes by log l - log g, topped up with random untried ones."""
    good, weights = _split(obs, s.gamma)
    l_probs, g_probs = _densities(grid, obs.cols, weights, good, s)
    log_ratio = np.log(l_probs / g_probs)
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
    """Return up to k distinct configurations, ranked best-first by l(x)/g(x), none in history or exclude.

    A thin wrapper: `suggest_arrays` on the history's columns (rows checked here first, so that an error
    names the offending Observation)."""
    grid = _Grid.of(space)
    _check_k(k)
    mat = grid.matrix(list(map(_PARAMS, history)), "history")
    scores = np.fromiter(map(_SCORE, history), dtype=float, count=len(history))
    ns = np.fromiter(map(_N, history), dtype=np.int64, count=len(history))
    excluded = grid.matrix(exclude, "exclude") if exclude else None
    return suggest_arrays(space, mat, scores, ns, settings, seed, k, exclude=excluded)


def suggest_arrays(
    space: list[int],
    params: np.ndarray,
    scores: np.ndarray,
    ns: np.ndarray,
    settings: TPESettings,
    seed: int,
    k: int,
    exclude: np.ndarray | None = None,
) -> list[list[int]]:
    """`suggest` on a columnar history: observation i is (params[i], scores[i], ns[i]).

    params: (N, n_dims) integer matrix; scores: (N,) finite mean scores; ns: (N,) integer rollout
    counts >= 1; exclude: (M, n_dims) integer matrix or None. Empty arrays of any shape are no rows.
    Build `params` from lists of rows with `params_matrix` (one pass, names a row of the wrong length).
    Identical results to `suggest` with Observation(params=params[i], score=scores[i], n=ns[i])."""
    grid = _Grid.of(space)
    _check_k(k)
    mat = grid.check(params, "history")
    scores = _column(np.asarray(scores, dtype=float), len(mat), "scores")
    ns = _column(ns, len(mat), "ns")
    if len(mat):
        if not np.isfinite(scores).all():
            i = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise ValueError(f"history[{i}] score {scores[i]} is not finite")
        if ns.dtype.kind not in "iu":
            raise ValueError(f"ns must hold integers, got dtype {ns.dtype}")
        if ns.min() < 1:
            i = int(np.flatnonzero(ns < 1)[0])
            raise ValueError(f"history[{i}] n {ns[i]} must be >= 1")
    excluded = grid.check(exclude, "exclude") if exclude is not None and len(exclude) else None
    return _suggest(grid, mat, scores, ns, excluded, settings, seed, k)


def _check_k(k: int) -> None:
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")


def _column(values: np.ndarray, length: int, what: str) -> np.ndarray:
    values = np.asarray(values)
    if values.size == 0 and length == 0:
        return values.reshape(0)
    if values.shape != (length,):
        raise ValueError(f"{what} has shape {values.shape}, the history has {length} params rows")
    return values


def _suggest(
    grid: _Grid,
    mat: np.ndarray,
    scores: np.ndarray,
    ns: np.ndarray,
    excluded: np.ndarray | None,
    settings: TPESettings,
    seed: int,
    k: int,
) -> list[list[int]]:
    """The suggestion from validated columns: mat (N, n_dims) int64, scores (N,) float, ns (N,) ints."""
    obs = _merge(grid, mat, mat @ grid.strides, scores, ns.astype(float))
    blocked = obs.codes
    if excluded is not None:
        blocked = np.union1d(blocked, excluded @ grid.strides)
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
