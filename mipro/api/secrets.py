"""Secrets in a request never reach a job: an inline task-app key is removed (the worker has it in its
environment), as the CLI does; provider keys are refused by the config parser; metadata may hold none."""

from __future__ import annotations

from typing import Any

from mipro.api.errors import ApiError, ErrorDetail
from mipro.config import SECRET_NAME


def secret_notices(raw: dict[str, Any], overrides: dict[str, Any], metadata: dict[str, Any]) -> list[str]:
    """What will be removed from the request, said to the caller; refuses metadata that looks secret."""
    for key in metadata:
        if SECRET_NAME.search(key.lower()):
            raise ApiError(
                422,
                "invalid_request",
                "metadata must not hold secrets",
                [
                    ErrorDetail(
                        field=f"metadata.{key}",
                        problem="looks like a secret",
                        fix="put keys in the worker's environment",
                    )
                ],
            )
    body = raw.get("prompt_learning", raw) if isinstance(raw, dict) else {}
    inline = isinstance(body, dict) and "task_app_api_key" in body
    inline = inline or any(p.removeprefix("prompt_learning.") == "task_app_api_key" for p in overrides)
    if not inline:
        return []
    env = body.get("task_app_api_key_env") if isinstance(body, dict) else None
    return [
        "task_app_api_key was removed before the job started and is stored nowhere: the worker reads the "
        f"task app's key from its own environment variable {env or 'ENVIRONMENT_API_KEY'}"
    ]
