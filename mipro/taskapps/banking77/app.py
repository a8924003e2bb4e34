"""The banking77 example task app: a FastAPI service wire-compatible with synth-ai's banking77 app (Gen B).

The routes, auth, stats and test knobs (`fail_seeds`, `hang_seeds`, `close_seeds`, `garbage_seeds`) are
the shared task-app service's (`mipro.taskapps.service`); this module says what banking77 answers.
"""

from __future__ import annotations

from typing import Unpack

from fastapi import FastAPI

from mipro.taskapps.banking77.data import Banking77Data
from mipro.taskapps.banking77.meta import app_meta, describe_taskset, task_instance
from mipro.taskapps.banking77.rollout import run_rollout
from mipro.taskapps.service import LLM_TIMEOUT_S, Knobs, RolloutStats, TaskAppSpec, create_task_app

__all__ = ["LLM_TIMEOUT_S", "SPEC", "RolloutStats", "create_app"]

SPEC = TaskAppSpec(meta=app_meta, taskset=describe_taskset, task_instance=task_instance, rollout=run_rollout)


def create_app(
    data: Banking77Data,
    api_key: str | None = None,
    fail_seeds: set[int] | None = None,
    **knobs: Unpack[Knobs],
) -> FastAPI:
    """The task app over `data`. `api_key` None means no auth; `mipro.taskapps.service` has the knobs."""
    return create_task_app(SPEC, data, api_key, fail_seeds, **knobs)
