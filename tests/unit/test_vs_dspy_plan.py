"""The benchmark's budget split (`benchmarks/vs_dspy.plan_for`): within budget by the service's own plan, and
small budgets buy enough validation rows."""

from __future__ import annotations

import pytest

pytest.importorskip("dspy")  # the benchmark imports DSPy (the `bench` extra)

from benchmarks.vs_dspy import POOL_SIZES, VAL_ROWS_SMALL, Pools, job_config, plan_for  # noqa: E402
from mipro.plan import rollout_plan  # noqa: E402

BUDGETS = [64, 100, 129, 200, 244, 277, 305, 400, 553, 800, 994, 1500, 1912]


@pytest.mark.parametrize("budget", BUDGETS)
def test_the_plan_fits_the_budget_as_the_service_counts_it(budget: int) -> None:
    plan = plan_for(budget)
    config = job_config("http://127.0.0.1:9", "http://127.0.0.1:9", Pools.make(10_003, 0, 500), plan, 0)
    service = rollout_plan(config)
    # the service's most: every promotion validates, and the best and the baseline are tested
    assert service.high - 2 * service.test == plan.max_rollouts() <= budget


@pytest.mark.parametrize("budget", [b for b in BUDGETS if 0.1 * b >= 16])
def test_a_small_budget_buys_enough_validation_rows(budget: int) -> None:
    plan = plan_for(budget)
    assert plan.n_val >= min(round(0.1 * budget), VAL_ROWS_SMALL, POOL_SIZES["val"])
    assert plan.iterations * plan.per_iteration >= 4, "and still a search"
