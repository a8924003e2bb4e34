"""Metadata routes' payloads for banking77: `/info`, `/task_info` (taskset and per-seed TaskInfo)."""

from __future__ import annotations

from typing import Any

from mipro.taskapps.banking77.data import Banking77Data
from mipro.taskapps.banking77.prompts import TOOL_NAME
from mipro.taskapps.contract import RubricCriterion, TaskInfo
from mipro.taskapps.metadata import AppMeta, Rubric

APP_ID = "banking77"
SPLITS = ["train", "test"]
TASK_SPLIT = "train"  # synth's provide_task_instances always samples the default split

OUTCOME_CRITERION = RubricCriterion(
    id="intent_accuracy",
    description="Correctly classify the customer query into the appropriate banking intent.",
    weight=1.0,
)
EVENTS_CRITERION = RubricCriterion(
    id="tool_usage",
    description="Properly invoke the banking77_classify tool with the correct format.",
    weight=1.0,
)


def app_meta(data: Banking77Data) -> AppMeta:
    return AppMeta(
        app_id=APP_ID,
        name="Banking77 Intent Classification",
        task_description="Classify banking queries into one intent via the banking77_classify tool.",
        dataset_description=f"Banking customer query intent classification with {len(data.labels)} intents.",
        splits=SPLITS,
        default_split=TASK_SPLIT,
        source=data.source,
        outcome=Rubric(
            "Classify banking customer queries into the correct intent category.", OUTCOME_CRITERION
        ),
        events=Rubric("Use the banking77_classify tool correctly.", EVENTS_CRITERION),
        action_space={"type": "tool_call", "tool_name": TOOL_NAME},
        inference={"tool": TOOL_NAME},
        task_metadata={"format": "tool_call"},
    )


def describe_taskset(data: Banking77Data) -> dict[str, Any]:
    """The `{"taskset": ...}` payload of `/task_info` without seeds."""
    return {
        **app_meta(data).dataset().model_dump(),
        "num_labels": len(data.labels),
        "sizes": {split: len(data.split(split)) for split in SPLITS},
    }


def task_instance(data: Banking77Data, seed: int) -> TaskInfo:
    """TaskInfo for one seed, on the train split with synth's `seed % len` mapping."""
    rows = data.split(TASK_SPLIT)
    idx = seed % len(rows)
    return app_meta(data).instance(TASK_SPLIT, idx, rows[idx].text)
