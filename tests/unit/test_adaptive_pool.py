"""The adaptive online pool's decisions (mipro/adaptive_pool.py): which seeds discriminate, how big the next
batch is, which seeds it takes. Pure functions: no workflow, no servers."""

from __future__ import annotations

import pytest

from mipro import adaptive_pool as ap
from mipro.minibatches import minibatch_blocks


def evidence(per_seed: dict[int, list[float]]) -> dict[int, ap.SeedEvidence]:
    return {seed: ap.SeedEvidence(tuple(scores)) for seed, scores in per_seed.items()}


def test_a_seed_discriminates_when_candidates_scores_on_it_differ() -> None:
    ev = ap.seed_evidence([{1: 1.0, 2: 1.0, 3: 0.0}, {1: 0.0, 2: 1.0, 3: 0.0}, {1: 1.0, 2: 1.0}])
    assert ev[1].discriminates and ev[1].scores == (1.0, 0.0, 1.0)
    assert not ev[2].discriminates, "every candidate right: tells nothing"
    assert not ev[3].discriminates, "every candidate wrong: tells nothing"
    assert ev[2].informativeness == ev[3].informativeness == 0.0
    # 0/1 scores: the variance p(1-p) is highest when the candidates split evenly
    assert ap.SeedEvidence((1.0, 0.0)).informativeness > ap.SeedEvidence((1.0, 1.0, 1.0, 0.0)).informativeness
    assert ap.SeedEvidence((0.5, 0.5000000001)).discriminates is False, "up to float rounding"


def test_the_first_batch_is_the_fixed_pools_first_block() -> None:
    pool = list(range(100, 148))
    blocks = minibatch_blocks(pool, 12, seed=3)
    order = [s for b in blocks for s in b]
    for level in ("LOW", "MODERATE", "HIGH"):
        choice = ap.iteration_seeds(level, order, 12, caches=[], previous=None, previous_size=None)
        assert choice.seeds == sorted(blocks[0], key=order.index) and choice.size == 12


def test_the_level_sets_the_minimum_batch_and_the_batch_moves_halfway_down_to_it() -> None:
    assert [ap.min_batch(level, 24) for level in ("LOW", "MODERATE", "HIGH")] == [18, 12, 6]
    assert ap.min_batch("HIGH", 4) == 2 and ap.min_batch("HIGH", 1) == 1, (
        "at least 2 seeds, at most the batch"
    )
    sizes = [24]
    for _ in range(5):
        sizes.append(ap.next_batch_size("HIGH", 24, sizes[-1], tied=False))
    assert sizes == [24, 15, 10, 8, 7, 6]
    assert ap.next_batch_size("HIGH", 24, 6, tied=False) == 6, "never below the level's minimum"
    assert ap.next_batch_size("NONE", 24, 6, tied=False) == 24, "NONE: the fixed batch"
    assert ap.next_batch_size("MODERATE", 24, None, tied=False) == 24, "no previous iteration: full batch"


def test_when_the_top_lifts_tie_the_batch_grows_up_to_batch_size() -> None:
    assert ap.next_batch_size("HIGH", 24, 8, tied=True) == 10
    assert ap.next_batch_size("HIGH", 24, 21, tied=True) == 24, "a trial never costs more than fixed blocks"
    # a tie: the best lift above the baseline, less than one seed (1/n) from the runner-up
    assert ap.lifts_tie([(0.25, 8), (0.25, 8), (0.0, 8)])
    assert not ap.lifts_tie([(0.25, 8), (0.125, 8)]), "one seed apart on 8 seeds: separated"
    assert ap.lifts_tie([(0.05, 8)]), "barely above the baseline (the runner-up): not separated"
    assert not ap.lifts_tie([(0.125, 8)]), "a seed above the baseline: separated"
    assert not ap.lifts_tie([(0.0, 8), (0.0, 8)]), "nothing above the baseline: nothing to separate"
    assert not ap.lifts_tie([(-0.125, 8), (-0.5, 8)])
    assert not ap.lifts_tie([(None, 0)]), "nothing scored"


def test_seeds_concentrate_on_the_discriminating_ones_and_explore_the_rest_in_order() -> None:
    order = list(range(20))
    # seeds 0-9 scored by 4 candidates: 0-3 discriminate (0 and 1 split evenly), 4-9 every candidate
    # right: they told nothing; 10-19 never scored
    seen = {0: [1, 0, 1, 0], 1: [0, 1, 0, 1], 2: [1, 1, 1, 0], 3: [0, 0, 0, 1]}
    seen |= {s: [1, 1, 1, 1, 1] for s in range(4, 10)}
    ev = evidence({s: [float(x) for x in v] for s, v in seen.items()})
    assert ap.choose_seeds("HIGH", order, ev, 5) == [0, 1, 2, 3, 10], "0.8 x 5: 4 discriminating, 1 new"
    assert ap.choose_seeds("LOW", order, ev, 6) == [0, 1, 2, 10, 11, 12], "0.5 x 6: the 3 most informative"
    assert ap.choose_seeds("LOW", order, ev, 4) == [0, 1, 10, 11]
    # a level that needs more scores to know a seed treats fewer seeds as known
    two = evidence({0: [1.0, 0.0], 4: [1.0, 1.0]})
    assert ap.choose_seeds("HIGH", order, two, 3) == [0, 1, 2], "HIGH knows seed 0 after 2 scores"
    assert ap.choose_seeds("MODERATE", order, two, 3) == [0, 1, 2], "MODERATE explores in order"
    assert ap.choose_seeds("HIGH", order, two, 4) == [0, 1, 2, 3] and 4 not in ap.choose_seeds(
        "HIGH", order, two, 18
    ), "a seed that told nothing comes last"
    # nothing left to explore: the discriminating seeds, then the silent ones with the fewest scores
    full = ev | {s: ap.SeedEvidence((0.0,) * 4) for s in range(10, 20)}
    assert ap.choose_seeds("HIGH", order, full, 8) == [0, 1, 2, 3, 10, 11, 12, 13]


def test_the_choice_is_deterministic_and_only_from_the_cache_and_the_order() -> None:
    order = minibatch_blocks(list(range(60)), 10, seed=7)
    flat = [s for b in order for s in b]
    caches = [{s: float(s % k == 0) for s in flat[:30]} for k in (2, 3, 5)]  # 3 scores: MODERATE knows
    a = ap.iteration_seeds("MODERATE", flat, 10, caches, previous=[(0.2, 10), (0.1, 10)], previous_size=10)
    b = ap.iteration_seeds("MODERATE", flat, 10, caches, previous=[(0.2, 10), (0.1, 10)], previous_size=10)
    assert a == b
    assert a.tied is False and a.size == 7  # halfway from 10 down to 5 (rounded toward 5)
    assert a.discriminating == round(2 / 3 * a.size) and len(a.seeds) == a.size == len(set(a.seeds))
    assert a.known_discriminating + a.known_silent == 30
    assert set(a.seeds) <= set(flat)


@pytest.mark.parametrize("level", ["LOW", "MODERATE", "HIGH"])
def test_fewer_rollouts_than_fixed_blocks_on_a_pool_where_most_seeds_tell_nothing(level: str) -> None:
    """A simulated search: candidates differ only on a third of the seeds. The adaptive pool spends fewer
    rollouts than fixed blocks, and more of them on the seeds that separate candidates."""
    pool, batch, k, iterations = list(range(90)), 12, 3, 10
    blocks = minibatch_blocks(pool, batch, seed=1)
    order = [s for b in blocks for s in b]

    def score(candidate: int, seed: int) -> float:
        if seed % 3:  # two thirds of the seeds: every candidate right (or wrong) alike
            return float(seed % 3 == 1)
        return float((seed // 3 + candidate) % 4 < 1 + candidate % 3)

    def run(adaptive: bool) -> tuple[int, int]:
        caches: dict[int, dict[int, float]] = {0: {}}
        rollouts = useful = 0
        previous: list[tuple[float | None, int]] | None = None
        size: int | None = None
        for it in range(iterations):
            if adaptive:
                choice = ap.iteration_seeds(level, order, batch, list(caches.values()), previous, size)
                seeds = choice.seeds
            else:
                seeds = blocks[it % len(blocks)]
            for s in seeds:
                if s not in caches[0]:
                    caches[0][s] = score(0, s)
                    rollouts += 1
            previous = []
            for j in range(k):
                cand = 1 + it * k + j
                caches[cand] = {s: score(cand, s) for s in seeds}
                rollouts += len(seeds)
                useful += sum(1 for s in seeds if s % 3 == 0)
                diffs = [caches[cand][s] - caches[0][s] for s in seeds]
                previous.append((sum(diffs) / len(diffs), len(diffs)))
            size = len(seeds)
        return rollouts, useful

    fixed, adaptive = run(False), run(True)
    assert adaptive[0] < fixed[0], "fewer rollouts for the same trials"
    assert adaptive[1] / adaptive[0] > fixed[1] / fixed[0], "a larger share on discriminating seeds"
