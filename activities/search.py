"""The TPE suggestion activity: a pure function of (space, history, seed), so any worker can serve it."""

from __future__ import annotations

from temporalio import activity

from mipro.activity_models import SuggestInput, SuggestOutput
from mipro.tpe import Observation, TPESettings, suggest


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
    history = [Observation(params=p, score=s, n=n) for p, s, n in inp.history]
    configs = suggest(inp.space, history, settings, seed=inp.seed, k=inp.k, exclude=inp.exclude)
    return SuggestOutput(configs=configs)
