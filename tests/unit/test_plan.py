"""One plan for the workflow and the dry run: `mipro.plan` counts, and the estimate's rollout range is it."""

from __future__ import annotations

from mipro.estimate import estimate_job
from mipro.plan import rollout_plan
from tests.conftest import job_config


def test_the_plan_counts_each_kind_of_rollout() -> None:
    config = job_config("http://127.0.0.1:9", "http://127.0.0.1:9")
    m = config.mipro
    plan = rollout_plan(config)
    assert plan.trials == m.num_iterations * m.num_evaluations_per_iteration
    assert plan.trial_rollouts == plan.trials * m.batch_size
    assert plan.test == len(m.test_pool)
    assert plan.low == len(m.bootstrap_train_seeds) + len(
        m.val_seeds
    ) + plan.baseline_minibatches + plan.test + (plan.trial_rollouts)
    assert plan.high == plan.low + plan.promotions_max + plan.test


def test_the_dry_run_estimate_uses_the_plan() -> None:
    config = job_config("http://127.0.0.1:9", "http://127.0.0.1:9", ["mipro.num_iterations=3"])
    plan, estimate = rollout_plan(config), estimate_job(config)
    assert (estimate.rollouts.low, estimate.rollouts.high) == (plan.low, plan.high)
