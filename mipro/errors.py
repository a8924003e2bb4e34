"""The distinct, documented failures of a job; each maps to a Temporal ApplicationError type."""

from __future__ import annotations


class MIPROConfigurationError(ValueError):
    """The job config is invalid. `problems` lists (field, what is wrong, how to fix it)."""

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        lines = [f"{field}: {msg}" + (f" ({fix})" if fix else "") for field, msg, fix in problems]
        super().__init__("invalid config:\n  " + "\n  ".join(lines))


class TaskAppHealthCheckFailed(RuntimeError):
    """The task app did not answer GET /health with 200; the job fails fast."""


class BudgetExceededError(RuntimeError):
    """A budget would be exceeded; work that would overspend is not started."""


class TaskAppAuthError(RuntimeError):
    """The task app refused our key: retrying cannot fix it."""
