"""The plan of a job: how many trials and rollouts of each kind its config asks for. One source for the
workflow (trials planned, the final test evaluation it reserves budget for) and for `--dry-run`'s estimate
(`mipro.estimate`), so the two cannot drift apart."""

from __future__ import annotations

from pydantic import BaseModel

from mipro.config import JobConfig


class RolloutPlan(BaseModel):
    """Rollout counts by kind. Promotions and the best candidate's test evaluation happen only when some
    candidate beats the baseline, so the smallest job has none of them and the largest has all."""

    trials: int  # trials planned (iterations x trials per iteration)
    bootstrap: int  # the baseline on the bootstrap seeds
    reference: int = 0  # the baseline on the reference pool (the meta-model's reference corpus)
    baseline_validation: int  # the baseline on the validation seeds
    baseline_minibatches: int  # the baseline on each minibatch block the search visits
    trial_rollouts: int  # every trial on its minibatch
    promotions_max: int  # a promotion after every validate_every_iterations, and after the search
    test: int  # one prompt on the test seeds

    @property
    def baseline_rollouts(self) -> int:
        return (
            self.bootstrap + self.reference + self.baseline_validation + self.baseline_minibatches + self.test
        )

    @property
    def candidate_low(self) -> int:
        return self.trial_rollouts  # the baseline stays best: it is the only prompt tested

    @property
    def candidate_high(self) -> int:
        return self.trial_rollouts + self.promotions_max + self.test

    @property
    def low(self) -> int:
        return self.baseline_rollouts + self.candidate_low

    @property
    def high(self) -> int:
        return self.baseline_rollouts + self.candidate_high


def rollout_plan(config: JobConfig) -> RolloutPlan:
    m = config.mipro
    blocks = len(m.online_pool) // m.batch_size
    trials = m.num_iterations * m.num_evaluations_per_iteration
    return RolloutPlan(
        trials=trials,
        bootstrap=len(m.bootstrap_train_seeds),
        reference=len(m.reference_pool),
        baseline_validation=len(m.val_seeds),
        baseline_minibatches=min(m.num_iterations, blocks) * m.batch_size,
        trial_rollouts=trials * m.batch_size,
        promotions_max=(m.num_iterations // m.validate_every_iterations + 1) * len(m.val_seeds),
        test=len(m.test_pool),
    )
