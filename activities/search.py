"""The TPE suggestion activity: a pure function of (space, history, seed), so any worker can serve it."""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np
from temporalio import activity

from mipro.activity_models import SuggestInput, SuggestOutput
from mipro.tpe import params_matrix, suggest_arrays

_PARAMS, _SCORE, _N = (operator.itemgetter(i) for i in range(3))


@activity.defn(name="suggest_candidates")
async def suggest_candidates(inp: SuggestInput) -> SuggestOutput:
    configs = suggest_arrays(
        inp.space,
        *history_arrays(inp.history, len(inp.space)),
        inp.tpe,
        seed=inp.seed,
        k=inp.k,
        exclude=params_matrix(inp.exclude, len(inp.space), "exclude") if inp.exclude else None,
    )
    return SuggestOutput(configs=configs)


def history_arrays(
    history: Sequence[tuple[Sequence[int], float, int]], n_dims: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SuggestInput.history's (params, score, n) tuples as columns for `suggest_arrays`: an (N, n_dims)
    params matrix, (N,) scores and (N,) ns, straight from the tuples (no object per observation)."""
    n = len(history)
    return (
        params_matrix(list(map(_PARAMS, history)), n_dims),
        np.fromiter(map(_SCORE, history), dtype=float, count=n),
        np.fromiter(map(_N, history), dtype=np.int64, count=n),
    )
