"""Metadata routes' payloads for the banking77 pipeline app: `/info`, `/task_info` (taskset and per seed)."""

from __future__ import annotations

from typing import Any

from mipro.taskapps.banking77.meta import SPLITS, TASK_SPLIT
from mipro.taskapps.banking77.prompts import TOOL_NAME
from mipro.taskapps.banking77_pipeline.prompts import PATTERNS, STAGES
from mipro.taskapps.banking77_pipeline.rollout import APP_ID, PipelineData
from mipro.taskapps.contract import RubricCriterion, TaskInfo
from mipro.taskapps.metadata import AppMeta, Rubric

OUTCOME_CRITERION = RubricCriterion(
    id="intent_accuracy",
    description="The pipeline's final intent (the classifier's, within the routed domain) is the right one.",
    weight=1.0,
)
EVENTS_CRITERION = RubricCriterion(
    id="routing",
    description="The router names one of the listed domains; the classifier calls banking77_classify.",
    weight=1.0,
)


def app_meta(data: PipelineData) -> AppMeta:
    return AppMeta(
        app_id=APP_ID,
        name="Banking77 Domain Router -> Intent Classifier",
        task_description=(
            f"Two stages: route each banking customer query to one of {len(data.domains)} domains, then "
            "classify its Banking77 intent among that domain's intents via the banking77_classify tool."
        ),
        dataset_description=(
            f"Banking customer query intent classification with {len(data.banking77.labels)} intents "
            f"grouped into {len(data.domains)} domains."
        ),
        splits=SPLITS,
        default_split=TASK_SPLIT,
        source=data.banking77.source,
        outcome=Rubric("Classify each query into the correct intent, via its domain.", OUTCOME_CRITERION),
        events=Rubric("Route to a listed domain; use the banking77_classify tool.", EVENTS_CRITERION),
        action_space={"type": "tool_call", "tool_name": TOOL_NAME},
        inference={"tool": TOOL_NAME},
        task_metadata={
            "format": "tool_call",
            "pipeline": {
                "stages": list(STAGES),
                "edges": [list(STAGES)],
                "baseline_messages": {
                    stage: [{"role": "system", "pattern": system}, {"role": "user", "pattern": user}]
                    for stage, (system, user) in PATTERNS.items()
                },
                "stage_urls": data.stage_urls,
            },
        },
    )


def describe_taskset(data: PipelineData) -> dict[str, Any]:
    """The `{"taskset": ...}` payload of `/task_info` without seeds."""
    return {
        **app_meta(data).dataset().model_dump(),
        "description": app_meta(data).task_description,
        "num_labels": len(data.banking77.labels),
        "domains": data.domains,
        "sizes": {split: len(data.banking77.split(split)) for split in SPLITS},
    }


def task_instance(data: PipelineData, seed: int) -> TaskInfo:
    """TaskInfo for one seed, on the train split with synth's `seed % len` mapping."""
    rows = data.banking77.split(TASK_SPLIT)
    idx = seed % len(rows)
    return app_meta(data).instance(TASK_SPLIT, idx, rows[idx].text)
