"""The task-app wire contract on our side: the rollout request we send and the reward we read back.

The request is a superset of what every known synth-ai task-app generation requires; the reward is read
leniently from `metrics` or `reward_info` (research/synth_task_app.md §1.3-1.5 and §6).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mipro.activity_models import RolloutTarget
from mipro.pipeline import candidate_template
from mipro.types import CompiledCandidate


def rollout_payload(
    target: RolloutTarget,
    seed: int,
    run_id: str,
    correlation_id: str,
    inference_url: str,
    candidate: CompiledCandidate | None = None,
) -> dict[str, Any]:
    """The JSON body of POST /rollout for one seed. With the candidate, `policy.config.prompt_template`
    carries it as the public pipeline task apps read it: `prompt_metadata.pipeline_modules` (per module, its
    stages with their instruction and demos; mipro/pipeline.py); the interceptor applies it either way."""
    policy = target.policy
    template = target.prompt_template
    if candidate is not None:
        template = candidate_template(template, target.stages, candidate)
    extra = dict(policy.model_extra or {})
    policy_config: dict[str, Any] = {
        **extra,
        "model": policy.model,
        "provider": policy.provider,
        "inference_url": inference_url,
        "temperature": policy.temperature,
        "max_completion_tokens": policy.max_completion_tokens,
        "trace_correlation_id": correlation_id,
        "prompt_template": template,
    }
    return {
        "run_id": run_id,
        "trace_correlation_id": correlation_id,
        "env": {"env_name": target.env_name, "seed": seed, "config": dict(target.env_config)},
        "policy": {
            "policy_id": policy.policy_name or target.env_name,
            "policy_name": policy.policy_name or target.env_name,
            "config": policy_config,
        },
        "ops": ["agent", "env"],
        "record": {"trajectories": True},
        "on_done": "reset",
        "mode": "eval",
    }


def auth_headers(api_key: str | None) -> dict[str, str]:
    if not api_key:
        return {}
    return {"X-API-Key": api_key, "X-API-Keys": api_key, "Authorization": f"Bearer {api_key}"}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _from_metrics(metrics: dict[str, Any]) -> float | None:
    for key in ("outcome_reward", "outcome_score"):
        if (v := _number(metrics.get(key))) is not None:
            return v
    objectives = metrics.get("outcome_objectives")
    if isinstance(objectives, dict) and (v := _number(objectives.get("reward"))) is not None:
        return v
    for key in ("mean_return", "reward_mean"):
        if (v := _number(metrics.get(key))) is not None:
            return v
    for key in ("episode_returns", "episode_rewards"):
        raw = metrics.get(key)
        values = [_number(x) for x in raw] if isinstance(raw, list) else []
        if values and all(v is not None for v in values):
            mean = sum(values) / len(values)  # type: ignore[arg-type]
            return mean if math.isfinite(mean) else None
    return None


def failed_status(body: Any) -> str | None:
    """The response's `success_status` when it says the rollout failed (not success/succeeded/ok), else None.
    Such a rollout has no reward, and an LLM judge does not score it either."""
    status = body.get("success_status") if isinstance(body, dict) else None
    if isinstance(status, str) and status.lower() not in ("success", "succeeded", "ok"):
        return status
    return None


def parse_reward(body: Any) -> float | None:
    """The rollout's reward, or None when the response carries none (a failed rollout, never a 0)."""
    if not isinstance(body, dict) or failed_status(body) is not None:
        return None
    for key in ("reward_info", "metrics"):
        metrics = body.get(key)
        if isinstance(metrics, dict) and (v := _from_metrics(metrics)) is not None:
            return v
    trajectories = body.get("trajectories")
    if isinstance(trajectories, list) and trajectories and isinstance(trajectories[0], dict):
        steps = trajectories[0].get("steps")
        if isinstance(steps, list) and steps and isinstance(steps[-1], dict):
            return _number(steps[-1].get("reward"))
    return None


SeedRange = tuple[int, int]  # inclusive bounds


def _ranges(value: Any) -> list[SeedRange] | None:
    """`[lo, hi]`, `{"min": lo, "max": hi}`, or a list of those, as inclusive ranges (None if unreadable)."""
    if isinstance(value, dict) and isinstance(value.get("min"), int) and isinstance(value.get("max"), int):
        return [(value["min"], value["max"])]
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return [(value[0], value[1])]
    if isinstance(value, list) and value:
        found = [_ranges(v) for v in value]
        if all(f is not None for f in found):
            return [r for f in found for r in f or []]
    return None


def advertised_seed_ranges(task_info: dict[str, Any] | None, split: str | None) -> list[SeedRange] | None:
    """The seed ranges a task app advertises in /task_info for `split`, or None when it advertises none.

    Read from `taskset` (else the top level): `seed_ranges` by split (`{"train": [0, 14999], ...}`; the
    split is env_config's, else the taskset's `default_split`, else "train"), or one `seed_range` for every
    split. Bounds are inclusive. Apps that map any seed onto a row (`seed % len`) advertise nothing.
    """
    if not isinstance(task_info, dict):
        return None
    taskset = task_info.get("taskset")
    source = taskset if isinstance(taskset, dict) else task_info
    by_split = source.get("seed_ranges")
    if isinstance(by_split, dict):
        name = split or source.get("default_split") or "train"
        return _ranges(by_split.get(name)) if name in by_split else None
    return _ranges(source.get("seed_range"))


def advertised_split(task_info: dict[str, Any] | None, split: str | None) -> str | None:
    """The split whose ranges `advertised_seed_ranges` reads for `split` (None: one range for every split)."""
    if not isinstance(task_info, dict):
        return split
    taskset = task_info.get("taskset")
    source = taskset if isinstance(taskset, dict) else task_info
    if isinstance(source.get("seed_ranges"), dict):
        return split or source.get("default_split") or "train"
    return split


def seeds_outside(pools: dict[str, list[int]], ranges: list[SeedRange]) -> dict[str, list[int]]:
    """Per pool, its seeds that fall in none of the ranges (pools with none are left out)."""
    out: dict[str, list[int]] = {}
    for name, seeds in pools.items():
        bad = [s for s in seeds if not any(lo <= s <= hi for lo, hi in ranges)]
        if bad:
            out[name] = bad
    return out


@dataclass(frozen=True)
class PoolOutside:
    """A seed pool's seeds outside the ranges the task app advertises for the pool's split."""

    split: str | None  # the split the ranges are for (None: the app advertises one range for every split)
    ranges: list[SeedRange]
    seeds: list[int]


def pools_outside_ranges(
    task_info: dict[str, Any] | None,
    pools: dict[str, list[int]],
    pool_splits: dict[str, str | None],
    default_split: str | None = None,
) -> dict[str, PoolOutside]:
    """Per pool, its seeds outside the ranges advertised for *its* split: `pool_splits[pool]` when the pool
    is named there (None: its env config sets no split, so the app's default), else `default_split`. Pools
    whose split advertises no range, and pools with no seed outside, are left out."""
    out: dict[str, PoolOutside] = {}
    for name, seeds in pools.items():
        split = pool_splits.get(name, default_split)  # a pool named with None: its env sets no split
        ranges = advertised_seed_ranges(task_info, split)
        if not ranges:
            continue
        bad = seeds_outside({name: seeds}, ranges).get(name)
        if bad:
            out[name] = PoolOutside(split=advertised_split(task_info, split), ranges=ranges, seeds=bad)
    return out
