"""The adaptive online pool (`mipro.adaptive_pool.level`): which seeds of the online pool an iteration's
trials run on, as pure functions of what the search has seen. The workflow calls `iteration_seeds`; unit
tests call everything directly.

A seed *discriminates* when the candidates scored on it (the baseline included) got different scores: it
is where their paired lifts come from. A seed that every candidate got right, or every one got wrong,
adds the same score to each side of every paired difference: it tells nothing about which candidate is
better, and spending rollouts on it only shrinks the lifts toward 0. So, per iteration:

- **size**: the first iteration runs a full `batch_size` block. After an iteration whose best paired lift
  is above the baseline's and *ties* the runner-up (the next trial's lift, or the baseline's 0: less than
  one seed's worth apart, 1/n on n seeds), the batch could not tell the top candidates apart: it grows by
  a quarter, up to `batch_size`. After any other iteration it moves halfway down to the level's minimum. A
  trial never costs more than with the fixed pool.
- **seeds**: the level's share of the batch goes to the most discriminating seeds seen so far (score
  variance across the candidates scored on it, highest first); the rest explores seeds not yet known (in
  the fixed pool's seeded order, so the first batch is the fixed pool's first block); when nothing is left
  to explore, more discriminating seeds, and only then the seeds that told nothing.

Every trial of an iteration runs on the same seeds and the baseline is scored on them too, so the search
stays paired; everything here derives from the cache and the seeded order (`mipro.seed`), nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Level = Literal["NONE", "LOW", "MODERATE", "HIGH"]
EPS = 1e-9  # scores closer than this are the same score


@dataclass(frozen=True)
class LevelPolicy:
    concentrate: float  # share of a batch taken from the most discriminating seeds known
    min_fraction: float  # the smallest batch, as a share of batch_size
    min_evals: int  # scores a seed needs before it counts as known (discriminating or not)


LEVELS: dict[str, LevelPolicy] = {
    "LOW": LevelPolicy(concentrate=0.5, min_fraction=0.75, min_evals=4),
    "MODERATE": LevelPolicy(concentrate=2 / 3, min_fraction=0.5, min_evals=3),
    "HIGH": LevelPolicy(concentrate=0.8, min_fraction=0.25, min_evals=2),
}


@dataclass(frozen=True)
class SeedEvidence:
    """What the candidates scored on one seed say about it."""

    scores: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.scores)

    @property
    def discriminates(self) -> bool:
        return bool(self.scores) and max(self.scores) - min(self.scores) > EPS

    @property
    def informativeness(self) -> float:
        """The scores' variance across candidates (p(1-p) for 0/1 scores): 0 when they all agree."""
        if not self.scores:
            return 0.0
        mean = sum(self.scores) / len(self.scores)
        return sum((x - mean) ** 2 for x in self.scores) / len(self.scores)


def seed_evidence(caches: Iterable[Mapping[int, float]]) -> dict[int, SeedEvidence]:
    """Per seed, the scores of every candidate scored on it (one cache per candidate: seed -> score)."""
    scores: dict[int, list[float]] = {}
    for cache in caches:
        for seed, score in cache.items():
            scores.setdefault(seed, []).append(score)
    return {seed: SeedEvidence(tuple(values)) for seed, values in scores.items()}


def min_batch(level: str, batch_size: int) -> int:
    """The smallest batch of a level: its share of batch_size, at least 2 seeds (never above batch_size)."""
    if level not in LEVELS:
        return batch_size
    return min(batch_size, max(2, math.ceil(LEVELS[level].min_fraction * batch_size)))


def lifts_tie(lifts: Sequence[tuple[float | None, int]]) -> bool:
    """Whether an iteration's best paired lift is above the baseline's and less than one seed's worth
    (1/n on n seeds) from the runner-up (the next trial's lift, or the baseline's 0): the batch found
    something promising and could not tell which candidate it is. Nothing above the baseline, or no
    trial scored: nothing to separate, no tie."""
    scored = [(lift, n) for lift, n in lifts if lift is not None and n > 0]
    if not scored:
        return False
    values = sorted([0.0, *(lift for lift, _ in scored)], reverse=True)
    n = min(n for _, n in scored)
    return values[0] > EPS and values[0] - values[1] < 1.0 / n - EPS


def next_batch_size(level: str, batch_size: int, previous: int | None, tied: bool) -> int:
    """The next iteration's batch: batch_size at first; after a tie, a quarter more (up to batch_size);
    otherwise halfway down to the level's minimum."""
    if level not in LEVELS or previous is None:
        return batch_size
    floor = min_batch(level, batch_size)
    previous = max(floor, min(batch_size, previous))
    if tied:
        return min(batch_size, previous + math.ceil(previous / 4))
    return max(floor, previous - math.ceil((previous - floor) / 2))


def choose_seeds(
    level: str, order: Sequence[int], evidence: Mapping[int, SeedEvidence], size: int
) -> list[int]:
    """`size` seeds of `order` (the pool in its seeded order): the level's share of the most
    discriminating known seeds, then unknown seeds in order, then more discriminating ones, then the
    seeds that told nothing (fewest scores first). Returned in pool order."""
    policy = LEVELS[level]
    position = {seed: i for i, seed in enumerate(order)}
    size = min(size, len(order))

    def known(seed: int) -> bool:
        return seed in evidence and evidence[seed].n >= policy.min_evals

    informative = sorted(
        (s for s in order if known(s) and evidence[s].discriminates),
        key=lambda s: (-evidence[s].informativeness, position[s]),
    )
    unknown = [s for s in order if not known(s)]
    silent = sorted(
        (s for s in order if known(s) and not evidence[s].discriminates),
        key=lambda s: (evidence[s].n, position[s]),
    )
    exploit = min(len(informative), round(policy.concentrate * size))
    picked = informative[:exploit]
    picked += [*unknown, *informative[exploit:], *silent][: size - len(picked)]
    return sorted(picked, key=lambda s: position[s])


@dataclass(frozen=True)
class Choice:
    """An iteration's seeds and why: for the workflow's event and for tests."""

    seeds: list[int]
    size: int
    tied: bool | None  # the previous iteration's top lifts tied (None: no previous iteration)
    discriminating: int  # of the chosen seeds, how many are known to discriminate
    known_discriminating: int  # in the whole pool
    known_silent: int  # seeds known to tell nothing, in the whole pool


def iteration_seeds(
    level: str,
    order: Sequence[int],
    batch_size: int,
    caches: Iterable[Mapping[int, float]],
    previous: Sequence[tuple[float | None, int]] | None,
    previous_size: int | None,
) -> Choice:
    """This iteration's seeds. `caches`: every candidate's online scores (seed -> score), the baseline's
    included; `previous`: the last iteration's trials as (paired lift, n), with its batch size."""
    evidence = seed_evidence(caches)
    tied = lifts_tie(previous) if previous is not None else None
    size = next_batch_size(level, batch_size, previous_size if previous is not None else None, bool(tied))
    seeds = choose_seeds(level, order, evidence, size)
    min_evals = LEVELS[level].min_evals

    def counted(seed: int) -> SeedEvidence | None:
        ev = evidence.get(seed)
        return ev if ev is not None and ev.n >= min_evals else None

    known = [ev for s in order if (ev := counted(s)) is not None]
    return Choice(
        seeds=seeds,
        size=size,
        tied=tied,
        discriminating=sum(1 for s in seeds if (ev := counted(s)) is not None and ev.discriminates),
        known_discriminating=sum(1 for ev in known if ev.discriminates),
        known_silent=sum(1 for ev in known if not ev.discriminates),
    )
