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


DEFAULT_TASK_APP_KEY_ENV = "ENVIRONMENT_API_KEY"


def task_app_key_fix(key_env: str | None, key_sent: bool) -> str:
    """What to do when a task app refuses the task-app key: which env var to set, and whether it was unset
    (no key sent) or rejected. The key is read from the worker's environment under `task_app_api_key_env`."""
    if not key_env:
        return (
            "the config names no task-app key (task_app_api_key_env), so none was sent: set "
            f'task_app_api_key_env = "{DEFAULT_TASK_APP_KEY_ENV}" in the config and '
            f"{DEFAULT_TASK_APP_KEY_ENV} to the task app's key in the worker's environment"
        )
    if not key_sent:
        return (
            f"{key_env} is not set in the worker's environment, so no key was sent: set {key_env} to the "
            "task app's key where the worker runs (`mipro worker`) and restart the worker"
        )
    return (
        f"the key in {key_env} was rejected: set {key_env} in the worker's environment to the key the "
        "task app was started with, and restart the worker"
    )
