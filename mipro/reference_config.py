"""The reference system's (synth-ai's) MIPRO config spellings, read into ours; and the keys it has that this
service does not implement, refused by name with the reason, never accepted and ignored.

`translate` moves each reference key to the field that implements it (top-level seed pools, `seeds.*`,
flat `meta_model*` keys, `instructions.*`, budgets beside `mipro`, `termination_conditions` and
`termination_config`). `refusals` lists what is left that has no effect here. The README's config table
says the same, key by key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mipro.errors import MIPROConfigurationError

Problem = tuple[str, str, str]  # (field, what is wrong, the fix)

# `mipro.seeds.<key>` and top-level pools -> the pool fields of `mipro`.
SEED_KEYS = {
    "bootstrap": "bootstrap_train_seeds",
    "online": "online_pool",
    "test": "test_pool",
    "validation": "val_seeds",
    "val": "val_seeds",
    "reference": "reference_pool",
}
POOL_FIELDS = ("bootstrap_train_seeds", "online_pool", "test_pool", "val_seeds", "reference_pool")
# `mipro.instructions.<key>` -> the `mipro` field of the same meaning.
INSTRUCTION_KEYS = {
    "instructions_per_batch": "instructions_per_batch",
    "max_instructions": "max_instructions",
    "duplicate_retry_limit": "duplicate_retry_limit",
    "generate_at_iterations": "generate_at_iterations",
    "proposer_mode": "proposer_mode",
    "proposer_effort": "proposer_effort",
    "proposer_output_tokens": "proposer_output_tokens",
    "transform_strict": "transform_strict",
    "transform_case_sensitive": "transform_case_sensitive",
    "transform_match_mode": "transform_match_mode",
}
# Budgets and limits the reference puts beside `mipro`, or in `termination_conditions` / `termination_config`,
# -> our `termination` fields (with a unit conversion where the reference counts differently).
TERMINATION_KEYS: dict[str, tuple[str, float]] = {
    "max_spend_usd": ("max_spend_usd", 1.0),
    "max_total_spend_usd": ("max_spend_usd", 1.0),
    "max_cost_usd": ("max_spend_usd", 1.0),
    "max_rollout_spend_usd": ("max_rollout_spend_usd", 1.0),
    "max_proposal_spend_usd": ("max_proposal_spend_usd", 1.0),
    "max_token_limit": ("max_token_limit", 1.0),
    "max_total_tokens": ("max_token_limit", 1.0),
    "max_duration_minutes": ("max_duration_minutes", 1.0),
    "max_wall_clock_seconds": ("max_duration_minutes", 1 / 60),
    "max_trials_allowed": ("max_trials_allowed", 1.0),
    "max_trials": ("max_trials_allowed", 1.0),
    "max_error_rate": ("max_error_rate", 1.0),
    "max_consecutive_errors": ("max_consecutive_errors", 1.0),
}

# Keys of the reference with no effect here: (where, why, what to do). Implementing one removes its row.
NOT_IMPLEMENTED: dict[str, tuple[str, str]] = {
    "mipro.demo": (
        "the reference's demo table is not read: demos are set by max_demo_set_size, max_demo_sets and "
        "few_shot_score_threshold",
        "move its settings to those keys and remove it",
    ),
    "mipro.grounding": (
        "separate grounding settings are not supported: the proposer is grounded in the task description, "
        "the bootstrapped demos and a tip",
        "remove it",
    ),
    "mipro.meta_update": (
        "meta_update is not supported: re-proposal grounded in the scores so far is generate_at_iterations",
        "use mipro.generate_at_iterations and remove it",
    ),
    "mipro.token_counting_model": (
        "token counts come from the LLM's own usage reports (and the interceptor's upper bound), not a "
        "tokenizer model",
        "remove it",
    ),
    "mipro.enforce_token_limit": (
        "token budgets are always enforced (termination.max_token_limit, call by call in the interceptor)",
        "remove it",
    ),
    "gepa": ("this service runs MIPRO only (algorithm = mipro)", "remove the gepa table"),
}


# Values of implemented keys that select behaviour not built yet: (key of `mipro`, refused when, why, fix).
NOT_IMPLEMENTED_VALUES: list[tuple[str, Callable[[Any], bool], str, str]] = []


def translate(body: dict[str, Any]) -> dict[str, Any]:
    """The config body with every reference spelling moved to the key that implements it."""
    body = dict(body)
    if not isinstance(body.get("mipro", {}), dict):
        return body  # validation reports the wrong type, naming the field
    mipro = dict(body.get("mipro") or {})
    for pool in POOL_FIELDS:
        if pool in body and pool not in mipro:
            mipro[pool] = body.pop(pool)
    if "validation_pool" in mipro and "val_seeds" not in mipro:
        mipro["val_seeds"] = mipro.pop("validation_pool")
    _move_table(mipro, "seeds", SEED_KEYS, mipro)
    _move_table(mipro, "instructions", INSTRUCTION_KEYS, mipro)
    _move_meta_keys(body, mipro)
    if "proxy_models" in mipro and "proxy_models" not in body:
        body["proxy_models"] = mipro.pop("proxy_models")
    if "judge" in mipro and "judge" not in body:
        body["judge"] = mipro.pop("judge")
    termination = (
        dict(body.get("termination") or {}) if isinstance(body.get("termination", {}), dict) else None
    )
    if termination is not None:
        for table in ("termination_config", "termination_conditions"):
            if isinstance(body.get(table), dict):
                _move_termination(body.pop(table), termination, table)
        _move_termination(mipro, termination, "mipro", only_known=True)
        if termination:
            body["termination"] = termination
    body["mipro"] = mipro
    return body


def refusals(body: dict[str, Any]) -> list[Problem]:
    """Reference keys, still present after `translate`, that have no effect here: each named, with why."""
    problems: list[Problem] = []
    mipro = body.get("mipro") if isinstance(body.get("mipro"), dict) else {}
    for path, (why, fix) in NOT_IMPLEMENTED.items():
        head, _, key = path.partition(".")
        present = key in mipro if head == "mipro" and key else head in body
        if present:
            problems.append((f"prompt_learning.{path}", why, fix))
    for key, refused, why, fix in NOT_IMPLEMENTED_VALUES:
        if key in mipro and refused(mipro[key]):
            problems.append((f"prompt_learning.mipro.{key}", why, fix))
    problems += _stage_refusals(mipro.get("stages"))
    for m, module in enumerate(mipro.get("modules") if isinstance(mipro.get("modules"), list) else []):
        if isinstance(module, dict):
            problems += _slot_refusal(module, f"modules[{m}]")
            problems += _stage_refusals(module.get("stages"), f"modules[{m}].stages")
    problems += _adaptive_pool_refusals(mipro.get("adaptive_pool"))
    return problems


# The reference's per-knob adaptive-pool settings: here `level` presets the policy (mipro/adaptive_pool.py).
ADAPTIVE_POOL_KNOBS = (
    "anchor_size",
    "pool_init_size",
    "pool_min_size",
    "warmup_iters",
    "anneal_stop_iter",
    "pool_update_period",
    "min_evals_per_example",
    "k_info_prompts",
    "info_buffer_factor",
    "info_epsilon",
    "anchor_selection_method",
    "exploration_strategy",
    "heatup_reserve_pool",
    "heatup_trigger",
    "heatup_size",
    "heatup_cooldown_trials",
    "heatup_schedule",
)


def _adaptive_pool_refusals(pool: Any) -> list[Problem]:
    """`adaptive_pool.level` is implemented; the reference's separate knobs are not (the level sets them)."""
    if not isinstance(pool, dict):
        return []
    return [
        (
            f"prompt_learning.mipro.adaptive_pool.{key}",
            "the adaptive pool's settings are preset by its level here (share of discriminating seeds, "
            "minimum batch, scores a seed needs): individual knobs are not supported",
            'remove it and choose adaptive_pool.level ("NONE", "LOW", "MODERATE", "HIGH")',
        )
        for key in ADAPTIVE_POOL_KNOBS
        if key in pool
    ]


def _stage_refusals(stages: Any, where: str = "stages") -> list[Problem]:
    problems: list[Problem] = []
    for i, stage in enumerate(stages if isinstance(stages, list) else []):
        if not isinstance(stage, dict):
            continue
        problems += _slot_refusal(stage, f"{where}[{i}]")
    return problems


def _slot_refusal(table: dict[str, Any], where: str) -> list[Problem]:
    if table.get("max_instruction_slots", 1) == 1:
        return []
    return [
        (
            f"prompt_learning.mipro.{where}.max_instruction_slots",
            "one instruction slot per stage: the search picks which instruction fills it",
            "set it to 1 or remove it",
        )
    ]


def _move_table(source: dict[str, Any], table: str, keys: dict[str, str], target: dict[str, Any]) -> None:
    values = source.get(table)
    if not isinstance(values, dict) or not all(k in keys for k in values):
        return  # validation names the unknown keys (or the wrong type)
    source.pop(table)
    for key, value in values.items():
        _set_once(target, keys[key], value, f"mipro.{table}.{key}", f"mipro.{keys[key]}")


def _set_once(target: dict[str, Any], field: str, value: Any, written: str, also: str) -> None:
    """One setting spelled twice is refused unless both say the same."""
    if field in target and target[field] != value:
        raise MIPROConfigurationError(
            [
                (
                    f"prompt_learning.{written}",
                    f"sets the same setting as {also}, differently",
                    "keep one of them",
                )
            ]
        )
    target[field] = value


def _move_meta_keys(body: dict[str, Any], mipro: dict[str, Any]) -> None:
    """Flat `meta_model*` keys -> `mipro.meta`; the meta-model's URL defaults to the policy's."""
    if not isinstance(mipro.get("meta", {}), dict):
        return
    meta = dict(mipro.get("meta") or {})
    for flat, key in (
        ("meta_model", "model"),
        ("meta_model_provider", "provider"),
        ("meta_model_inference_url", "inference_url"),
    ):
        if flat in mipro:
            meta.setdefault(key, mipro.pop(flat))
    if meta:
        policy = body.get("policy") if isinstance(body.get("policy"), dict) else {}
        same_provider = meta.get("provider", "openai") == policy.get("provider", "openai")
        if policy.get("inference_url") and (same_provider or "provider" not in meta):
            meta.setdefault("inference_url", policy["inference_url"])
        mipro["meta"] = meta


def _move_termination(
    source: dict[str, Any], termination: dict[str, Any], where: str, only_known: bool = False
) -> None:
    for key in list(source):
        if key in TERMINATION_KEYS:
            field, factor = TERMINATION_KEYS[key]
            value = source.pop(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and factor != 1.0:
                value = value * factor
            _set_once(termination, field, value, f"{where}.{key}", f"termination.{field}")
        elif not only_known:
            termination.setdefault(key, source[key])  # validation names keys we do not know
