"""Examples of the API's response bodies, shown in the OpenAPI document (docs/openapi.json).

tests/unit/test_openapi.py validates each against its model, so an example cannot drift from the code.
FastAPI leaves null values out of the document's examples, so a required field is never null here.
"""

from __future__ import annotations

import json
from typing import Any

JOB_ID = "pl_0123456789abcdef"
CREATED = "2026-01-31T12:00:00Z"

JOB: dict[str, Any] = {
    "job_id": JOB_ID,
    "algorithm": "mipro",
    "status": "succeeded",
    "org": "acme",
    "created_at": CREATED,
    "started_at": CREATED,
    "finished_at": "2026-01-31T12:00:21Z",
    "best_score": 0.5,
    "trials": 32,
    "spend_usd": 0.1896,
    "metadata": {"team": "support"},
    "error": None,
    "notices": [],
    "progress": None,
}

JOB_LIST: dict[str, Any] = {"jobs": [JOB], "limit": 50, "offset": 0, "has_more": False}

EVENTS_PAGE: dict[str, Any] = {
    "events": [
        {
            "seq": 1,
            "type": "prompt.learning.phase.changed",
            "level": "info",
            "message": "phase: health_check",
            "data": {"phase": "health_check"},
            "created_at": CREATED,
        }
    ],
    "next_since_seq": 1,
    "has_more": True,
}

CHOICE = {"instruction": [2], "demo_set": [1]}
CANDIDATE: dict[str, Any] = {
    "key": "2:1",
    "choice": CHOICE,
    "candidate_hash": "9f2c4e1a7b3d5f60",
    "demo_counts": [3],
    "minibatch_score": 0.583,
    "minibatch_n": 24,
    "paired_lift": 0.125,
    "validation_score": 0.5,
    "test_score": 0.493,
}

CANDIDATES_PAGE: dict[str, Any] = {"candidates": [CANDIDATE], "total": 27, "limit": 100, "offset": 0}

INSTRUCTION = "You are an expert banking assistant. Answer with exactly one intent label."
BEST_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": INSTRUCTION},
    {"role": "user", "content": "Customer Query: {query}\n\nClassify this query."},
]

ROLLOUT_USAGE = {"calls": 1780, "prompt_tokens": 2950000, "completion_tokens": 495000, "cost_usd": 0.1871}
JOB_RESULT: dict[str, Any] = {
    "job_id": JOB_ID,
    "status": "succeeded",
    "simulated_llm": True,
    "best_messages": BEST_MESSAGES,
    "result": {
        "job_id": JOB_ID,
        "status": "succeeded",
        "stop_reason": "search_space_exhausted",  # FastAPI drops nulls from examples; this one is required
        "best": {
            "choice": CHOICE,
            "instructions": [INSTRUCTION],
            "messages": BEST_MESSAGES,
        },
        "baseline_test_score": 0.34,
        "best_test_score": 0.493,
        "lift": 0.153,
        "baseline_validation_score": 0.3,
        "best_validation_score": 0.5,
        "total_trials": 32,
        "total_rollouts": 1780,
        "rollout_errors": 0,
        "errors_by_kind": {},
        "attempted_candidates": [CANDIDATE],
        "instructions": [[INSTRUCTION]],
        "trials": [],
        "validations": [],
        "costs": {
            "rollout": ROLLOUT_USAGE,
            "proposal": {"calls": 9, "prompt_tokens": 3100, "completion_tokens": 900, "cost_usd": 0.0025},
        },
        "elapsed_seconds": 20.3,
        "simulated_llm": True,
        "warnings": [],
    },
}

METRICS: list[dict[str, Any]] = [
    {
        "name": "trial.minibatch_score",
        "value": 0.583,
        "step": 1,
        "data": {"candidate": "2:1", "iteration": 0, "n": 24, "errors": 0},
    },
    {"name": "trial.best_minibatch_score", "value": 0.583, "step": 1, "data": {}},
    {"name": "validation.score", "value": 0.5, "step": 5, "data": {"candidate": "2:1", "incumbent": True}},
    {"name": "spend.rollout_usd", "value": 0.1871, "step": 32, "data": {"tokens": 3445000, "calls": 1780}},
]

HEALTH: dict[str, Any] = {"status": "ok", "temporal": "127.0.0.1:7233/default", "task_queue": "mipro"}

SAVED_CONFIG_LIST: dict[str, Any] = {"configs": ["banking77-example"]}

ERROR: dict[str, Any] = {
    "error": {
        "code": "invalid_config",
        "message": "invalid config: nothing was started",
        "details": [
            {
                "field": "prompt_learning.mipro.meta",
                "problem": "Field required",
                "fix": "add it to the config",
            }
        ],
    }
}

EVENT_STREAM = (
    ": heartbeat\n\n"
    "id: 1\nevent: prompt.learning.phase.changed\n"
    f"data: {json.dumps(EVENTS_PAGE['events'][0], separators=(',', ':'))}\n\n"
    f'event: end\ndata: {{"job_id": "{JOB_ID}"}}\n\n'
)

REPORT = "<!doctype html><html><head><title>pl_0123456789abcdef</title></head><body>...</body></html>"
