"""The TPE suggestion activity: a pure function of (space, history, seed), so any worker can serve it."""

from __future__ import annotations

import numpy as np
from temporalio import activity

from mipro.activity_models import SuggestInput, SuggestOutput
from mipro.tpe import TPESettings, params_matrix, suggest_arrays


@activity.defn(name="suggest_candidates")
async def suggest_candidates(inp: SuggestInput) -> SuggestOutput:
    settings = TPESettings(
        gamma=inp.gamma,
        n_candidates=inp.n_candidates,
        n_startup_trials=inp.n_startup_trials,
        epsilon=inp.epsilon,
        alpha=inp.alpha,
        prior_weight=inp.prior_weight,
    )
    configs = suggest_arrays(
        inp.space,
        *history_arrays(inp),
        settings,
        seed=inp.seed,
        k=inp.k,
        exclude=params_matrix(inp.exclude, len(inp.space), "exclude"),
    )
    return SuggestOutput(configs=configs)


def history_arrays(inp: SuggestInput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The history's (params, score, n) tuples as columns: (N, n_dims) params, (N,) scores, (N,) ns.

    Straight from the tuples, with no per-observation object: the columns of a long history cost less
    than the model fit itself."""
    if not inp.history:
        return np.empty((0, len(inp.space)), dtype=np.int64), np.empty(0), np.empty(0, dtype=np.int64)
    params, scores, ns = zip(*inp.history)  # noqa: B905 (every item is a 3-tuple)
    return (
        params_matrix(params, len(inp.space)),
        np.array(scores, dtype=float),
        np.array(ns, dtype=np.int64),
    )
