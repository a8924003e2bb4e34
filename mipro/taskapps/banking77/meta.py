"""Metadata routes' payloads for banking77: `/info`, `/task_info` (taskset and per-seed TaskInfo)."""

from __future__ import annotations

from typing import Any

from mipro.taskapps.banking77.data import Banking77Data
from mipro.taskapps.banking77.prompts import TOOL_NAME
from mipro.taskapps.contract import (
    DatasetInfo,
    InferenceInfo,
    LimitsInfo,
    RubricCriterion,
    RubricInfo,
    RubricSection,
    TaskDescriptor,
    TaskInfo,
)

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


def _dataset(data: Banking77Data) -> DatasetInfo:
    return DatasetInfo(
        id="banking77",
        name="Banking77 Intent Classification",
        version="1.0.0",
        splits=SPLITS,
        default_split=TASK_SPLIT,
        description=f"Banking customer query intent classification with {len(data.labels)} intents.",
        source=data.source,
    )


def base_task_info(data: Banking77Data) -> TaskInfo:
    return TaskInfo(
        task=TaskDescriptor(
            id=APP_ID,
            name="Banking77 Intent Classification",
            version="1.0.0",
            description="Classify banking queries into one intent via the banking77_classify tool.",
            action_space={"type": "tool_call", "tool_name": TOOL_NAME},
        ),
        environment=APP_ID,
        dataset=_dataset(data),
        rubric=RubricInfo(
            outcome=RubricSection(name="outcome", criteria=[OUTCOME_CRITERION]),
            events=RubricSection(name="events", criteria=[EVENTS_CRITERION]),
        ),
        inference=InferenceInfo(supports_proxy=True, tool=TOOL_NAME),
        limits=LimitsInfo(max_turns=1),
        task_metadata={"format": "tool_call"},
    )


def describe_taskset(data: Banking77Data) -> dict[str, Any]:
    """The `{"taskset": ...}` payload of `/task_info` without seeds."""
    return {
        **_dataset(data).model_dump(),
        "num_labels": len(data.labels),
        "sizes": {split: len(data.split(split)) for split in SPLITS},
    }


def task_instance(data: Banking77Data, seed: int) -> TaskInfo:
    """TaskInfo for one seed, on the train split with synth's `seed % len` mapping."""
    rows = data.split(TASK_SPLIT)
    idx = seed % len(rows)
    base = base_task_info(data)
    dataset = DatasetInfo(**base.dataset.model_dump(), split=TASK_SPLIT, index=idx)
    return base.model_copy(
        update={"dataset": dataset, "task_metadata": {**base.task_metadata, "query": rows[idx].text}}
    )


def info_payload(data: Banking77Data) -> dict[str, Any]:
    """`/info`: service, dataset, rubrics, inference, limits."""
    base = base_task_info(data)
    return {
        "service": {"task": base.task.model_dump(), "version": base.task.version},
        "dataset": base.dataset.model_dump(),
        "rubrics": {
            "outcome": {
                "goal_text": "Classify banking customer queries into the correct intent category.",
                "aggregation": "weighted_sum",
                "criteria": [OUTCOME_CRITERION.model_dump()],
            },
            "events": {
                "goal_text": "Use the banking77_classify tool correctly.",
                "aggregation": "weighted_sum",
                "criteria": [EVENTS_CRITERION.model_dump()],
            },
        },
        "inference": base.inference.model_dump(),
        "limits": base.limits.model_dump(),
    }
