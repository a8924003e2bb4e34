"""Metadata shared by the example task apps: what `/info` and `/task_info` say, built from one `AppMeta`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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


@dataclass(frozen=True)
class Rubric:
    goal: str  # the rubric's goal text in /info
    criterion: RubricCriterion


@dataclass(frozen=True)
class AppMeta:
    """Everything a single-turn example app says about itself."""

    app_id: str
    name: str  # e.g. "Banking77 Intent Classification"
    task_description: str
    dataset_description: str
    splits: list[str]
    default_split: str
    source: str  # where the data came from
    outcome: Rubric
    events: Rubric
    action_space: dict[str, Any] = field(default_factory=dict)
    inference: dict[str, Any] = field(default_factory=dict)  # InferenceInfo fields besides supports_proxy
    task_metadata: dict[str, Any] = field(default_factory=dict)

    def dataset(self) -> DatasetInfo:
        return DatasetInfo(
            id=self.app_id,
            name=self.name,
            version="1.0.0",
            splits=self.splits,
            default_split=self.default_split,
            description=self.dataset_description,
            source=self.source,
        )

    def task_info(self) -> TaskInfo:
        return TaskInfo(
            task=TaskDescriptor(
                id=self.app_id,
                name=self.name,
                version="1.0.0",
                description=self.task_description,
                action_space=self.action_space,
            ),
            environment=self.app_id,
            dataset=self.dataset(),
            rubric=RubricInfo(
                outcome=RubricSection(name="outcome", criteria=[self.outcome.criterion]),
                events=RubricSection(name="events", criteria=[self.events.criterion]),
            ),
            inference=InferenceInfo(supports_proxy=True, **self.inference),
            limits=LimitsInfo(max_turns=1),
            task_metadata=self.task_metadata,
        )

    def instance(self, split: str, index: int, query: str) -> TaskInfo:
        """The TaskInfo of one seed: the split, the row index and the query."""
        base = self.task_info()
        dataset = DatasetInfo(**base.dataset.model_dump(), split=split, index=index)
        return base.model_copy(
            update={"dataset": dataset, "task_metadata": {**base.task_metadata, "query": query}}
        )

    def info(self) -> dict[str, Any]:
        """`/info`: service, dataset, rubrics, inference, limits."""
        base = self.task_info()
        rubrics = {"outcome": self.outcome, "events": self.events}
        return {
            "service": {"task": base.task.model_dump(), "version": base.task.version},
            "dataset": base.dataset.model_dump(),
            "rubrics": {
                name: {
                    "goal_text": r.goal,
                    "aggregation": "weighted_sum",
                    "criteria": [r.criterion.model_dump()],
                }
                for name, r in rubrics.items()
            },
            "inference": base.inference.model_dump(),
            "limits": base.limits.model_dump(),
        }
