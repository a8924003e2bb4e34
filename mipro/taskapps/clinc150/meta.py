"""Metadata routes' payloads for CLINC150: `/info`, `/task_info` (taskset with seed ranges, per-seed)."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from mipro.taskapps.auth import error_detail
from mipro.taskapps.clinc150.data import Clinc150Data
from mipro.taskapps.clinc150.prompts import ANSWER_FORMAT
from mipro.taskapps.contract import RubricCriterion, TaskInfo
from mipro.taskapps.metadata import AppMeta, Rubric
from mipro.taskapps.rows import Row
from mipro.taskapps.single_turn import split_rows

APP_ID = "clinc150"
DEFAULT_SPLIT = "train"

OUTCOME_CRITERION = RubricCriterion(
    id="intent_accuracy",
    description="Name the intent the request expresses, as one of the listed labels.",
    weight=1.0,
)
FORMAT_CRITERION = RubricCriterion(
    id="answer_format",
    description=f"Reply with one line `{ANSWER_FORMAT}`: other formats score 0.",
    weight=1.0,
)


def description(data: Clinc150Data) -> str:
    """The task description the optimizer reads (its proposer grounds instructions in it)."""
    return (
        f"Classify a virtual-assistant request into one of {len(data.labels)} CLINC150 intents. Answer with "
        f"one line `{ANSWER_FORMAT}`, the label spelled exactly as listed; any other format scores 0."
    )


def app_meta(data: Clinc150Data) -> AppMeta:
    return AppMeta(
        app_id=APP_ID,
        name="CLINC150 Intent Classification",
        task_description=description(data),
        dataset_description=description(data),
        splits=list(data.splits),
        default_split=DEFAULT_SPLIT,
        source=data.source,
        outcome=Rubric("Name the intent of each virtual-assistant request.", OUTCOME_CRITERION),
        events=Rubric(f"Answer in the format `{ANSWER_FORMAT}`.", FORMAT_CRITERION),
        action_space={"type": "text", "format": ANSWER_FORMAT},
        task_metadata={"format": "text", "answer_format": ANSWER_FORMAT},
    )


def describe_taskset(data: Clinc150Data) -> dict[str, Any]:
    """The `{"taskset": ...}` payload of `/task_info`: dataset, sizes, and the valid seeds per split."""
    return {
        **app_meta(data).dataset().model_dump(),
        "num_labels": len(data.labels),
        "sizes": {split: len(rows) for split, rows in data.splits.items()},
        "seed_ranges": data.seed_ranges(),
        "domains": data.domains,
    }


def pick_row(data: Clinc150Data, split: str, seed: int) -> Row:
    """Row `seed` of the split's fixed order; 400 `seed_out_of_range` outside 0..len-1 (no wrap-around)."""
    rows = split_rows(data.split, split)
    if not 0 <= seed < len(rows):
        message = f"seed {seed} is outside split {split!r}: valid seeds are 0..{len(rows) - 1}"
        raise HTTPException(400, detail=error_detail("seed_out_of_range", message, seed=seed))
    return rows[seed]


def task_instance(data: Clinc150Data, seed: int, split: str = DEFAULT_SPLIT) -> TaskInfo:
    """TaskInfo for one seed of a split."""
    return app_meta(data).instance(split, seed, pick_row(data, split, seed).text)
