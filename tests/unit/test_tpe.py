"""Unit tests of the categorical TPE (`mipro.tpe`)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mipro.tpe import Observation, TPESettings, suggest

Space = list[int]
TrueScore = Callable[[list[int]], float]


def _history(space: Space, rows: list[list[int]], seed: int = 0) -> list[Observation]:
    rng = np.random.default_rng(seed)
    return [Observation(params=r, score=float(rng.random()), n=int(rng.integers(1, 20))) for r in rows]


def _random_rows(space: Space, count: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[int(rng.integers(0, c)) for c in space] for _ in range(count)]


@st.composite
def _cases(draw: st.DrawFn) -> tuple[Space, list[Observation], list[list[int]], TPESettings, int, int]:
    space = draw(st.lists(st.integers(1, 12), min_size=1, max_size=6))
    row = st.tuples(*(st.integers(0, c - 1) for c in space)).map(list)
    obs = st.builds(Observation, params=row, score=st.floats(-1, 2), n=st.integers(1, 50))
    history = draw(st.lists(obs, max_size=40))
    exclude = draw(st.lists(row, max_size=10))
    tpe = TPESettings(
        gamma=draw(st.floats(0.01, 1.0)),
        n_candidates=draw(st.integers(1, 64)),
        n_startup_trials=draw(st.integers(0, 5)),
        epsilon=draw(st.floats(0.0, 1.0)),
        alpha=draw(st.sampled_from([0.0, 0.1, 1.0])),
        prior_weight=draw(st.sampled_from([0.5, 1.0, 4.0])),
    )
    return space, history, exclude, tpe, draw(st.integers(-(2**40), 2**40)), draw(st.integers(0, 40))


@settings(max_examples=150, deadline=None)
@given(_cases())
def test_outputs_are_distinct_untried_and_in_range(
    case: tuple[Space, list[Observation], list[list[int]], TPESettings, int, int],
) -> None:
    space, history, exclude, tpe, seed, k = case
    out = suggest(space, history, tpe, seed, k, exclude=exclude)
    tried = {tuple(o.params) for o in history} | {tuple(e) for e in exclude}
    assert len(out) == min(k, math.prod(space) - len(tried))
    assert len({tuple(p) for p in out}) == len(out)
    assert not {tuple(p) for p in out} & tried
    assert all(len(p) == len(space) and all(0 <= x < c for x, c in zip(p, space, strict=True)) for p in out)
    assert all(type(x) is int for p in out for x in p)
    assert out == suggest(space, list(history), tpe, seed, k, exclude=list(exclude))


def test_deterministic_and_seed_dependent() -> None:
    space = [10, 12, 8, 6]
    history = _history(space, _random_rows(space, 25, seed=1))
    outs = [suggest(space, history, TPESettings(), seed, 5) for seed in range(10)]
    assert outs == [suggest(space, history, TPESettings(), seed, 5) for seed in range(10)]
    assert len({str(o) for o in outs}) > 1


def test_large_space_with_big_batch_tops_up_with_random_configs() -> None:
    space = [70, 80]  # 5600 configs: candidates are drawn from l, not enumerated
    history = _history(space, _random_rows(space, 20, seed=2))
    out = suggest(space, history, TPESettings(n_candidates=4), seed=3, k=50)
    assert len({tuple(p) for p in out}) == 50
    assert not {tuple(p) for p in out} & {tuple(o.params) for o in history}


def test_empty_history_gives_k_distinct_random_configs() -> None:
    out = suggest([3, 4], [], TPESettings(), seed=7, k=5)
    assert len({tuple(p) for p in out}) == 5
    assert suggest([3, 4], [], TPESettings(), seed=7, k=0) == []
    assert len(suggest([3, 4], [], TPESettings(), seed=7, k=100)) == 12


def test_exhausted_space_returns_only_remaining_configs() -> None:
    space = [2, 3]
    history = _history(space, [[0, 0], [0, 1], [0, 2], [1, 0]])
    assert sorted(suggest(space, history, TPESettings(), 0, k=5)) == [[1, 1], [1, 2]]
    assert suggest(space, history, TPESettings(), 0, k=5, exclude=[[1, 1]]) == [[1, 2]]
    assert suggest(space, history, TPESettings(), 0, k=5, exclude=[[1, 1], [1, 2]]) == []
    assert suggest([1, 1], _history([1, 1], [[0, 0]]), TPESettings(), 0, k=1) == []


def test_smaller_k_is_a_prefix_of_the_ranking() -> None:
    space = [10, 12]
    history = _history(space, _random_rows(space, 30, seed=4))
    tpe = TPESettings(epsilon=0.0)
    full = suggest(space, history, tpe, seed=5, k=8)
    assert [suggest(space, history, tpe, seed=5, k=i) for i in range(1, 9)] == [full[:i] for i in range(1, 9)]


def test_startup_trials_sample_uniformly_like_an_empty_history() -> None:
    space = [10, 12]
    history = _history(space, _random_rows(space, 6, seed=6))
    tpe = TPESettings(n_startup_trials=10)
    excluded = [o.params for o in history]
    assert suggest(space, history, tpe, 9, 4) == suggest(space, [], tpe, 9, 4, exclude=excluded)


def test_repeated_observations_are_merged_by_n_weighted_mean() -> None:
    space = [4, 4]
    others = [Observation(params=[c, c], score=0.5, n=10) for c in (1, 2, 3)]
    merged = [Observation(params=[0, 0], score=0.1, n=10), *others]
    split = [Observation(params=[0, 0], score=1.0, n=1), Observation(params=[0, 0], score=0.0, n=9), *others]
    for seed in range(5):
        assert suggest(space, split, TPESettings(), seed, 6) == suggest(space, merged, TPESettings(), seed, 6)


def test_a_lucky_single_rollout_does_not_outrank_a_well_measured_config() -> None:
    space = [4, 4]
    history = [
        Observation(params=[0, 0], score=1.0, n=1),  # lucky: one rollout
        Observation(params=[1, 1], score=0.9, n=50),  # good and well measured
        Observation(params=[2, 2], score=0.5, n=10),
        Observation(params=[3, 3], score=0.5, n=10),
    ]
    out = suggest(space, history, TPESettings(epsilon=0.0), seed=0, k=6)
    assert {tuple(p) for p in out} == {(1, 0), (1, 2), (1, 3), (0, 1), (2, 1), (3, 1)}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"space": []}, "at least one dimension"),
        ({"space": [3, 0]}, "dimension 1 has 0 choices"),
        ({"k": -1}, "k must be >= 0"),
        ({"history": [Observation(params=[1], score=0.5)]}, r"history\[0\] has 1 params"),
        ({"history": [Observation(params=[1, 4], score=0.5)]}, r"history\[0\] index 4 .* dimension 1"),
        ({"history": [Observation(params=[-1, 0], score=0.5)]}, r"index -1 .* dimension 0"),
        ({"exclude": [[0, 0], [0, 0, 0]]}, r"exclude\[1\] has 3 params"),
    ],
)
def test_bad_input_raises_value_error(kwargs: dict[str, object], message: str) -> None:
    call: dict[str, object] = {"space": [3, 4], "history": [], "settings": TPESettings(), "seed": 0, "k": 1}
    with pytest.raises(ValueError, match=message):
        suggest(**{**call, **kwargs})  # type: ignore[arg-type]


def test_bad_settings_and_observations_raise_value_error() -> None:
    with pytest.raises(ValueError, match="alpha \\+ prior_weight"):
        TPESettings(alpha=0.0, prior_weight=0.0)
    with pytest.raises(ValueError, match="gamma"):
        TPESettings(gamma=0.0)
    with pytest.raises(ValueError, match="n"):
        Observation(params=[0], score=0.5, n=0)
    with pytest.raises(ValueError, match="score"):
        Observation(params=[0], score=float("nan"))


def _mipro_like(rng: np.random.Generator, stages: int) -> tuple[Space, TrueScore, float]:
    """Per stage 10 instructions x 12 demo sets: additive qualities plus a small interaction."""
    tables = []
    for _ in range(stages):
        inst, demo = rng.uniform(0.0, 0.25, 10), rng.uniform(0.0, 0.2, 12)
        tables.append(inst[:, None] + demo[None, :] + rng.normal(0.0, 0.03, (10, 12)))
    scale = math.sqrt(stages)

    def true(p: list[int]) -> float:
        value = 0.25 + sum(t[p[2 * s], p[2 * s + 1]] for s, t in enumerate(tables)) / scale
        return float(np.clip(value, 0.0, 1.0))

    best = float(np.clip(0.25 + sum(t.max() for t in tables) / scale, 0.0, 1.0))  # stages are additive
    return [10, 12] * stages, true, best


def _mean_regret(stages: int, trials: int, batch: int, random_search: bool, n_seeds: int = 40) -> float:
    regrets = []
    for seed in range(n_seeds):
        rng = np.random.default_rng(1000 + seed)
        space, true, best = _mipro_like(rng, stages)
        history: list[Observation] = []
        found = 0.0
        while len(history) < trials:
            k, round_seed = min(batch, trials - len(history)), seed * 1000 + len(history)
            if random_search:  # uniform without replacement: empty model, everything tried excluded
                tried = [o.params for o in history]
                picks = suggest(space, [], TPESettings(), round_seed, k, exclude=tried)
            else:
                picks = suggest(space, history, TPESettings(), round_seed, k)
            for p in picks:
                p_true = true(p)
                history.append(Observation(params=p, score=rng.binomial(10, p_true) / 10, n=10))
                found = max(found, p_true)
        regrets.append(best - found)
    return float(np.mean(regrets))


@pytest.mark.parametrize(("stages", "trials", "batch"), [(1, 30, 1), (1, 30, 3), (3, 60, 3)])
def test_beats_random_search_on_a_mipro_like_space(stages: int, trials: int, batch: int) -> None:
    tpe = _mean_regret(stages, trials, batch, random_search=False)
    rand = _mean_regret(stages, trials, batch, random_search=True)
    print(f"stages={stages} trials={trials} batch={batch}: TPE regret {tpe:.4f}, random {rand:.4f}")
    assert tpe < rand
