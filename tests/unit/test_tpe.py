"""Unit tests of the categorical TPE (`mipro.tpe`)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mipro.activities.search import history_arrays, suggest_candidates
from mipro.activity_models import SuggestInput
from mipro.tpe import Observation, TPESettings, params_matrix, suggest, suggest_arrays

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


def _columns(history: list[Observation], width: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """The history as suggest_arrays' columns, in a random integer dtype (as any caller might pass)."""
    dtype = rng.choice([np.int64, np.int32, np.uint8, np.intp])
    params = np.array([o.params for o in history], dtype=dtype).reshape(len(history), width)
    scores = np.array([o.score for o in history], dtype=float)
    return params, scores, np.array([o.n for o in history], dtype=rng.choice([np.int64, np.int16]))


@settings(max_examples=300, deadline=None)
@given(_cases(), st.integers(0, 2**32 - 1))
def test_suggest_arrays_gives_exactly_what_suggest_gives(
    case: tuple[Space, list[Observation], list[list[int]], TPESettings, int, int], dtype_seed: int
) -> None:
    space, history, exclude, tpe, seed, k = case
    rng = np.random.default_rng(dtype_seed)
    params, scores, ns = _columns(history, len(space), rng)
    excluded = np.array(exclude, dtype=np.int64).reshape(len(exclude), len(space)) if exclude else None
    expected = suggest(space, history, tpe, seed, k, exclude=exclude)
    assert suggest_arrays(space, params, scores, ns, tpe, seed, k, exclude=excluded) == expected
    # the activity's path: columns straight from SuggestInput.history-like tuples
    tuples = [(o.params, o.score, o.n) for o in history]
    columns = history_arrays(tuples, len(space))
    excluded_rows = params_matrix(exclude, len(space), "exclude")
    assert suggest_arrays(space, *columns, tpe, seed, k, exclude=excluded_rows) == expected


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_suggest_arrays_matches_suggest_on_wide_dimensions_and_repeats(data: st.DataObject) -> None:
    """Dimensions over 255 choices (params no longer fit a byte) and many repeats of few configs."""
    space = data.draw(st.lists(st.integers(1, 400), min_size=1, max_size=3))
    configs = data.draw(st.lists(st.tuples(*(st.integers(0, c - 1) for c in space)).map(list), min_size=1))
    picks = data.draw(st.lists(st.integers(0, len(configs) - 1), max_size=120))
    scores = data.draw(
        st.lists(st.sampled_from([0.0, -0.0, 0.25, 1.0]), min_size=len(picks), max_size=len(picks))
    )
    history = [
        Observation(params=configs[i], score=s, n=1 + i % 7) for i, s in zip(picks, scores, strict=True)
    ]
    seed, k = data.draw(st.integers(0, 2**31)), data.draw(st.integers(0, 12))
    expected = suggest(space, history, TPESettings(), seed, k)
    columns = history_arrays([(o.params, o.score, o.n) for o in history], len(space))
    assert suggest_arrays(space, *columns, TPESettings(), seed, k) == expected


def test_outputs_match_the_previous_implementation() -> None:
    """Digest of suggestions computed by the implementation before suggest_arrays (mipro/tpe.py of
    46ea884): the same inputs must give the same configs across versions."""
    out = []
    cases = [([10, 12], 30, False), ([5, 6] * 3, 200, True), ([3, 8], 5, False), ([70, 80], 40, True)]
    for case, (space, n_obs, dup) in enumerate([*cases, ([4, 4, 4], 63, True)]):
        rng = np.random.default_rng(100 + case)
        rows = [[int(rng.integers(0, c)) for c in space] for _ in range(n_obs)]
        if dup:
            rows += rows[: n_obs // 3]
        history = [
            Observation(params=r, score=int(rng.integers(0, 25)) / 24, n=int(rng.integers(1, 30)))
            for r in rows
        ]
        for seed in range(20):
            exclude = rows[: seed % 3] or None
            out.append(suggest(space, history, TPESettings(), seed, k=1 + seed % 5, exclude=exclude))
    digest = hashlib.sha256(json.dumps(out).encode()).hexdigest()
    assert digest == "00fef729faea5eb25460227f61d51eab466a1e7a26aa72cd3189449100cfec30"


async def test_activity_serves_the_same_suggestions_as_suggest() -> None:
    space = [10, 12, 8, 6]
    history = _history(space, _random_rows(space, 40, seed=11))
    exclude = _random_rows(space, 3, seed=12)
    inp = SuggestInput(
        space=space,
        history=[(o.params, o.score, o.n) for o in history],
        tpe=TPESettings(
            gamma=0.25, n_candidates=32, n_startup_trials=0, epsilon=0.1, alpha=1.0, prior_weight=1.0
        ),
        seed=5,
        k=4,
        exclude=exclude,
    )
    out = await suggest_candidates(inp)
    assert out.configs == suggest(space, history, TPESettings(), 5, 4, exclude=exclude)
    empty = await suggest_candidates(inp.model_copy(update={"history": [], "exclude": []}))
    assert empty.configs == suggest(space, [], TPESettings(), 5, 4)


def _recorded_suggestions() -> list[tuple[str, SuggestInput, list[list[int]]]]:
    """(history file, input, result) of every suggest_candidates activity in the committed histories."""
    found = []
    for path in sorted((Path(__file__).resolve().parents[1] / "histories").glob("*.json")):
        scheduled: dict[str, SuggestInput] = {}
        for event in json.loads(path.read_text())["events"]:
            attrs = event.get("activityTaskScheduledEventAttributes")
            if attrs and attrs["activityType"]["name"] == "suggest_candidates":
                data = base64.b64decode(attrs["input"]["payloads"][0]["data"])
                scheduled[event["eventId"]] = SuggestInput.model_validate_json(data)
            done = event.get("activityTaskCompletedEventAttributes")
            if done and done["scheduledEventId"] in scheduled:
                result = json.loads(base64.b64decode(done["result"]["payloads"][0]["data"]))
                found.append((path.name, scheduled[done["scheduledEventId"]], result["configs"]))
    return found


async def test_activity_reproduces_the_recorded_suggestions() -> None:
    recorded = _recorded_suggestions()
    assert recorded
    for name, inp, configs in recorded:
        assert (await suggest_candidates(inp)).configs == configs, name


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


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"params": np.zeros((1, 3), dtype=int)}, r"history has shape \(1, 3\), the space needs \(N, 2\)"),
        ({"params": np.zeros(2, dtype=int)}, r"history has shape \(2,\)"),
        ({"params": np.array([[0, 4]])}, r"history\[0\] index 4 .* dimension 1"),
        ({"params": np.array([[0, 0], [-1, 0]])}, r"history\[1\] index -1 .* dimension 0"),
        ({"params": np.zeros((1, 2))}, "history must hold integers"),
        ({"scores": np.array([0.5, 0.5])}, r"scores has shape \(2,\), the history has 1"),
        ({"scores": np.array([np.nan])}, r"history\[0\] score nan is not finite"),
        ({"scores": np.array([np.inf])}, "not finite"),
        ({"ns": np.array([0])}, r"history\[0\] n 0 must be >= 1"),
        ({"ns": np.array([1.0])}, "ns must hold integers"),
        ({"ns": np.array([], dtype=int)}, r"ns has shape \(0,\)"),
        ({"exclude": np.array([[0, 0, 0]])}, r"exclude has shape \(1, 3\)"),
        ({"exclude": np.array([[3, 0]])}, r"exclude\[0\] index 3 .* dimension 0"),
        ({"k": -1}, "k must be >= 0"),
    ],
)
def test_suggest_arrays_bad_input_raises_value_error(kwargs: dict[str, object], message: str) -> None:
    call: dict[str, object] = {
        "space": [3, 4],
        "params": np.array([[1, 1]]),
        "scores": np.array([0.5]),
        "ns": np.array([2]),
        "settings": TPESettings(),
        "seed": 0,
        "k": 1,
    }
    with pytest.raises(ValueError, match=message):
        suggest_arrays(**{**call, **kwargs})  # type: ignore[arg-type]


def test_empty_columns_of_any_shape_are_an_empty_history() -> None:
    expected = suggest([3, 4], [], TPESettings(), 7, 5)
    for params in (np.array([]), np.empty((0, 2)), np.empty((0, 2), dtype=np.uint8)):
        assert suggest_arrays([3, 4], params, np.array([]), np.array([]), TPESettings(), 7, 5) == expected
        assert suggest_arrays([3, 4], params, [], [], TPESettings(), 7, 5, exclude=np.array([])) == expected  # type: ignore[arg-type]


def test_params_matrix_reads_small_and_large_indices_alike() -> None:
    rows = [[0, 255], [7, 3]]
    assert params_matrix(rows, 2).tolist() == rows
    assert params_matrix([[0, 256], [7, 3]], 2).tolist() == [[0, 256], [7, 3]]  # past a byte: fromiter
    assert params_matrix([[-1, 3]], 2).tolist() == [[-1, 3]]  # range errors are the suggest's to raise
    assert params_matrix([], 3).shape == (0, 3)
    with pytest.raises(ValueError, match=r"exclude\[1\] has 1 params, the space has 2 dims"):
        params_matrix([[0, 1], [2]], 2, "exclude")


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
