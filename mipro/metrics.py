"""A job's metrics as a flat series (`[{name, value, step, data}]`): what dashboards plot.

A pure function of the trial and validation records and the spend, so the workflow's `metrics` query and
anything holding a finished job's result compute the same series.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from mipro.budget import Spend
from mipro.job_models import TrialRecord, ValidationRecord


class Metric(BaseModel):
    name: str
    value: float
    step: int  # trials completed when the value was recorded
    data: dict[str, Any] = Field(default_factory=dict)


def job_metrics(trials: list[TrialRecord], validations: list[ValidationRecord], spend: Spend) -> list[Metric]:
    """Minibatch score per trial with the best so far, validation scores with the best so far, spend."""
    out: list[Metric] = []
    best: float | None = None
    for t in trials:
        if t.minibatch_score is None:
            continue
        best = t.minibatch_score if best is None else max(best, t.minibatch_score)
        data = {"candidate": t.choice.key, "iteration": t.iteration, "n": t.n, "errors": t.errors}
        out.append(Metric(name="trial.minibatch_score", value=t.minibatch_score, step=t.trial, data=data))
        out.append(Metric(name="trial.best_minibatch_score", value=best, step=t.trial))
        out.append(Metric(name="spend.cumulative_usd", value=t.spend_usd, step=t.trial))
    best_val: float | None = None
    for v in validations:
        best_val = v.score if best_val is None else max(best_val, v.score)
        data = {"candidate": v.key, "incumbent": v.incumbent}
        out.append(Metric(name="validation.score", value=v.score, step=v.after_trials, data=data))
        out.append(Metric(name="validation.best_score", value=best_val, step=v.after_trials))
    step = len(trials)
    for category in ("rollout", "proposal"):
        usage = getattr(spend, category)
        data = {"tokens": usage.total_tokens, "calls": usage.calls}
        out.append(Metric(name=f"spend.{category}_usd", value=usage.cost_usd, step=step, data=data))
    total = spend.total
    out.append(
        Metric(name="spend.total_usd", value=total.cost_usd, step=step, data={"tokens": total.total_tokens})
    )
    return out
