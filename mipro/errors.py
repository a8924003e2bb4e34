"""The distinct, documented failures of a job: a bad config (refused before anything starts), and the
failure types of a job's Temporal ApplicationError."""

from __future__ import annotations

from enum import StrEnum


class MIPROConfigurationError(ValueError):
    """The job config is invalid. `problems` lists (field, what is wrong, how to fix it)."""

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        lines = [f"{field}: {msg}" + (f" ({fix})" if fix else "") for field, msg, fix in problems]
        super().__init__("invalid config:\n  " + "\n  ".join(lines))


class FailureType(StrEnum):
    """Why a job (its workflow) or an activity failed: the `type` of the Temporal ApplicationError.

    Used when raising and in retry policies' `non_retryable_error_types`, so the two cannot drift.
    """

    HEALTH_CHECK = "TaskAppHealthCheckFailed"  # the task app is unreachable, unhealthy, or refuses the seeds
    AUTH = "TaskAppAuthError"  # the task app refused our key: retrying cannot fix it
    BUDGET = "BudgetExceededError"  # the budget does not even cover the bootstrap
    TRANSFORM = "TransformApplicationError"  # the baseline instruction is not in the task app's LLM calls
