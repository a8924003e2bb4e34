"""The banking77 pipeline example task app: a domain router, then an intent classifier within the domain.

The routes, auth, stats and test knobs are the shared task-app service's (`mipro.taskapps.service`); this
module says what the pipeline answers. Its own knobs: `stage_urls=False` calls the LLM at the plain
inference URL (the interceptor then maps each call to its stage by its baseline instruction), and
`read_prompt_template=False` ignores the candidate the request carries (the interceptor applies it).
"""

from __future__ import annotations

from typing import Unpack

from fastapi import FastAPI

from mipro.taskapps.banking77.data import Banking77Data
from mipro.taskapps.banking77_pipeline.meta import app_meta, describe_taskset, task_instance
from mipro.taskapps.banking77_pipeline.rollout import PipelineData, run_rollout
from mipro.taskapps.service import Knobs, TaskAppSpec, create_task_app

SPEC = TaskAppSpec(meta=app_meta, taskset=describe_taskset, task_instance=task_instance, rollout=run_rollout)


def create_app(
    data: Banking77Data,
    api_key: str | None = None,
    fail_seeds: set[int] | None = None,
    *,
    stage_urls: bool = True,
    read_prompt_template: bool = True,
    **knobs: Unpack[Knobs],
) -> FastAPI:
    """The pipeline app over `data`. `api_key` None means no auth; `mipro.taskapps.service` has the knobs."""
    pipeline = PipelineData(data, stage_urls=stage_urls, read_prompt_template=read_prompt_template)
    return create_task_app(SPEC, pipeline, api_key, fail_seeds, **knobs)
