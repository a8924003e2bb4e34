"""The CLINC150 example task app: 150 intents, a plain-text answer (`Intent: <label>`), no tools.

The routes, auth, stats and test knobs (`fail_seeds`, `hang_seeds`, `close_seeds`, `garbage_seeds`) are
the shared task-app service's (`mipro.taskapps.service`). One knob of its own: `state_answer_format=False`
drops the answer format from the prompt while the scorer still requires it (a job's baseline then scores 0,
which the optimizer must report).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Unpack

from fastapi import FastAPI

from mipro.taskapps.clinc150.data import Clinc150Data
from mipro.taskapps.clinc150.meta import app_meta, describe_taskset, task_instance
from mipro.taskapps.clinc150.rollout import run_rollout
from mipro.taskapps.service import Knobs, TaskAppSpec, create_task_app

SPEC = TaskAppSpec(meta=app_meta, taskset=describe_taskset, task_instance=task_instance, rollout=run_rollout)


def create_app(
    data: Clinc150Data,
    api_key: str | None = None,
    fail_seeds: set[int] | None = None,
    *,
    state_answer_format: bool = True,
    **knobs: Unpack[Knobs],
) -> FastAPI:
    """The task app over `data`. `api_key` None means no auth; `mipro.taskapps.service` has the knobs."""
    spec = replace(SPEC, rollout=partial(run_rollout, state_answer_format=state_answer_format))
    return create_task_app(spec, data, api_key, fail_seeds, **knobs)
