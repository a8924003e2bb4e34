"""The reference (synth-ai) MIPRO config: its spellings are read into ours, and the keys with no effect here
are refused by name with the reason (issue 9: accepted with an effect, or refused, never ignored)."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mipro.config import JobConfig, parse_config
from mipro.errors import MIPROConfigurationError
from tests.conftest import REPO

SHIPPED = tomllib.loads((REPO / "configs" / "banking77.toml").read_text())["prompt_learning"]


def shipped(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(SHIPPED)
    for path, value in changes.items():
        node = body
        *parents, last = path.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return body


def refused(body: dict[str, Any]) -> list[tuple[str, str, str]]:
    with pytest.raises(MIPROConfigurationError) as info:
        parse_config({"prompt_learning": body})
    return info.value.problems


def test_the_reference_example_toml_shape_is_read_as_written() -> None:
    """The reference's example: flat pools, flat meta_model keys, tpe.alpha, seeds.*, instructions.*."""
    m = SHIPPED["mipro"]
    body = shipped(mipro__bootstrap_train_seeds=None, mipro__online_pool=None, mipro__test_pool=None)
    body["bootstrap_train_seeds"] = m["bootstrap_train_seeds"]
    body["mipro"]["seeds"] = {"online": m["online_pool"], "test": m["test_pool"]}
    body["mipro"]["tpe"] = {"gamma": 0.25, "alpha": 2.0}
    del body["mipro"]["max_instructions"]
    body["mipro"]["instructions"] = {
        "max_instructions": 4,
        "generate_at_iterations": [2],
        "transform_match_mode": "exact",
    }
    body["mipro"]["meta_model"] = body["mipro"].pop("meta")["model"]
    config = parse_config({"prompt_learning": body})
    assert config.mipro.bootstrap_train_seeds == m["bootstrap_train_seeds"]
    assert (config.mipro.online_pool, config.mipro.test_pool) == (m["online_pool"], m["test_pool"])
    assert config.mipro.tpe.alpha == 2.0
    assert (config.mipro.max_instructions, config.mipro.generate_at_iterations) == (4, [2])
    assert config.mipro.meta.model == m["meta"]["model"]
    assert config.mipro.meta.inference_url == body["policy"]["inference_url"], "defaults to the policy's"


def test_reference_budget_spellings_land_in_termination() -> None:
    body = shipped(termination=None)
    body["termination_config"] = {"max_total_spend_usd": 2.5, "max_trials": 40}
    body["termination_conditions"] = {"max_consecutive_errors": 7}
    body["mipro"]["max_wall_clock_seconds"] = 600
    body["mipro"]["max_total_tokens"] = 1_000_000
    term = parse_config({"prompt_learning": body}).termination
    assert (term.max_spend_usd, term.max_trials_allowed, term.max_consecutive_errors) == (2.5, 40, 7)
    assert term.max_duration_minutes == 10 and term.max_token_limit == 1_000_000


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("mipro__adaptive_pool", {"anchor_size": 30}, "prompt_learning.mipro.adaptive_pool.anchor_size"),
        ("mipro__token_counting_model", "gpt-4", "prompt_learning.mipro.token_counting_model"),
        ("mipro__grounding", {"n": 10}, "prompt_learning.mipro.grounding"),
    ],
)
def test_a_reference_key_without_an_effect_here_is_refused_by_name(key: str, value: Any, named: str) -> None:
    problems = refused(shipped(**{key: value}))
    assert [p[0] for p in problems] == [named]
    assert problems[0][1] and problems[0][2], "says why and what to do"


def test_every_refused_key_of_a_config_is_named_at_once() -> None:
    body = shipped(gepa={"x": 1}, mipro__demo={"k": 1}, mipro__token_counting_model="gpt-4")
    assert {p[0] for p in refused(body)} == {
        "prompt_learning.gepa",
        "prompt_learning.mipro.demo",
        "prompt_learning.mipro.token_counting_model",
    }


def test_the_reference_proposer_keys_are_read_with_their_effect() -> None:
    """proposer_mode/effort/output_tokens, instructions_per_batch (also under `instructions`), the synth
    spec and metaprompt, spec_max_tokens and seeds.reference are built (tests/unit/test_proposer_modes.py
    shows each one's effect on the proposer; here: the config carries them, the levels set the meta-model)."""
    body = shipped(mipro__spec={"rules": ["Answer with one label."]}, mipro__spec_max_tokens=300)
    body["mipro"]["meta"] = {
        k: v for k, v in body["mipro"]["meta"].items() if k not in ("temperature", "max_tokens")
    }
    body["mipro"]["instructions"] = {
        "proposer_mode": "gepa-ai",
        "proposer_effort": "high",
        "proposer_output_tokens": "RAPID",
        "instructions_per_batch": 3,
    }
    body["mipro"]["metaprompt"] = "Write {n} instructions for {stage_id} that obey: {spec}"
    body["mipro"]["seeds"] = {"reference": [10_001, 10_002]}
    m = parse_config({"prompt_learning": body}).mipro
    assert (m.proposer_mode, m.proposer_effort, m.proposer_output_tokens) == ("gepa-ai", "HIGH", "RAPID")
    assert (m.instructions_per_batch, m.spec_max_tokens, m.reference_pool) == (3, 300, [10_001, 10_002])
    assert (m.meta.temperature, m.meta.max_tokens) == (1.0, 256), "the levels set what meta does not"
    assert m.spec == {"rules": ["Answer with one label."]} and m.metaprompt is not None


@pytest.mark.parametrize("where", ["judge", "mipro__judge"])
def test_the_judge_table_is_accepted_at_the_top_or_under_mipro(where: str) -> None:
    """The judge is built (mipro/judge.py): its table is read, the reference's spellings too."""
    judge = {
        "backend_model": "judge-model",
        "backend_provider": "Groq",
        "reward_source": "fused",
        "weight": 0.3,
    }
    price = {"input_per_mtok": 0.1, "output_per_mtok": 0.2}
    body = shipped(**{where: judge})
    with pytest.raises(MIPROConfigurationError, match="pricing has no entry for model 'judge-model'"):
        parse_config({"prompt_learning": body})  # a USD budget is set: the judge's model needs a price
    body["pricing"]["judge-model"] = price
    config = parse_config({"prompt_learning": body})
    assert config.judge is not None
    assert (config.judge.model, config.judge.provider, config.judge.mode) == ("judge-model", "groq", "blend")
    assert config.judge.weight == 0.3 and config.judge.enabled


def test_the_reference_judge_services_keys_and_a_task_app_reward_source_are_refused() -> None:
    problems = refused(
        shipped(judge={"model": "j", "backend_base": "http://x/api", "backend_rubric_id": "r"})
    )
    assert [p[0] for p in problems] == ["prompt_learning.judge"]
    assert "backend_base, backend_rubric_id" in problems[0][1] and "rubric" in problems[0][1]
    [problem] = refused(shipped(judge={"model": "j", "reward_source": "task_app"}))
    assert "needs no judge" in problem[1]


def test_adaptive_pool_none_is_the_fixed_pool_and_accepted() -> None:
    assert isinstance(
        parse_config({"prompt_learning": shipped(mipro__adaptive_pool={"level": "NONE"})}), JobConfig
    )
    assert parse_config({"prompt_learning": shipped()}).mipro.adaptive_pool.level == "NONE", "absent: NONE"


@pytest.mark.parametrize(
    ("written", "level"),
    [
        ({"level": "HIGH"}, "HIGH"),
        ({"level": "moderate"}, "MODERATE"),
        ("low", "LOW"),
        ({}, "LOW"),  # the reference's default level for a table without one
    ],
)
def test_adaptive_pool_levels_are_accepted_with_an_effect(written: Any, level: str) -> None:
    config = parse_config({"prompt_learning": shipped(mipro__adaptive_pool=written)})
    assert config.mipro.adaptive_pool.level == level


def test_adaptive_pool_knobs_of_the_reference_are_refused_by_name_and_a_bad_level_too() -> None:
    body = shipped(mipro__adaptive_pool={"level": "HIGH", "pool_min_size": 20, "heatup_size": 5})
    problems = refused(body)
    assert {p[0] for p in problems} == {
        "prompt_learning.mipro.adaptive_pool.pool_min_size",
        "prompt_learning.mipro.adaptive_pool.heatup_size",
    }
    assert all("level" in p[2] for p in problems), "says the level sets them"
    [problem] = refused(shipped(mipro__adaptive_pool={"level": "EXTREME"}))
    assert problem[0] == "prompt_learning.mipro.adaptive_pool.level"


def test_stage_keys_without_an_effect_are_refused_and_python_transforms_too() -> None:
    stage = {"stage_id": "main", "baseline_instruction": "x"}
    module = {"module_id": "m", "max_instruction_slots": 3, "stages": [stage]}
    assert {p[0] for p in refused(shipped(mipro__modules=[module]))} == {
        "prompt_learning.mipro.modules[0].max_instruction_slots",
    }
    both = {**stage, "policy": {"model": "y"}, "policy_config": {"model": "z"}}
    [problem] = refused(shipped(mipro__stages=[both]))
    assert "policy and policy_config are both set" in problem[1]
    assert [
        p[0]
        for p in refused(shipped(mipro__stages=[{"baseline_instruction": "x", "max_instruction_slots": 3}]))
    ] == ["prompt_learning.mipro.stages[0].max_instruction_slots"]
    problems = refused(shipped(mipro__stages=[{"baseline_instruction": "x", "mode": "PYTHON"}]))
    assert "PYTHON transforms are refused" in problems[0][1]
    problems = refused(shipped(mipro__stages=[{"baseline_instruction": "x", "typo_key": 1}]))
    assert problems[0][0] == "prompt_learning.mipro.stages.0.typo_key", "stages refuse unknown keys"


def test_reference_transform_settings_are_the_stages_defaults() -> None:
    system = next(m["pattern"] for m in SHIPPED["initial_prompt"]["messages"] if m["role"] == "system")
    body = shipped(mipro__transform_match_mode="exact", mipro__transform_case_sensitive=False)
    body["mipro"]["stages"] = [{"stage_id": "main", "baseline_instruction": system, "mode": "FOLLOW"}]
    [stage] = parse_config({"prompt_learning": body}).mipro.stages
    assert (stage.mode, stage.match, stage.case_sensitive) == ("follow", "exact", False)


def test_parallel_risk_sets_the_parallelism_not_given() -> None:
    body = shipped(mipro__parallel_risk="high", mipro__max_concurrent=None, mipro__max_parallel_trials=None)
    body["mipro"].pop("rollout_retries", None)
    m = parse_config({"prompt_learning": body}).mipro
    assert (m.parallel_risk, m.max_concurrent, m.max_parallel_trials, m.rollout_retries) == ("HIGH", 48, 8, 3)
    body["mipro"]["max_concurrent"] = 5  # what the config sets wins
    assert parse_config({"prompt_learning": body}).mipro.max_concurrent == 5


def test_one_setting_spelled_twice_differently_is_refused() -> None:
    body = shipped()
    body["mipro"]["instructions"] = {"max_instructions": body["mipro"]["max_instructions"] + 1}
    assert [p[0] for p in refused(body)] == ["prompt_learning.mipro.instructions.max_instructions"]
    body = shipped()
    body["termination_config"] = {"max_total_spend_usd": body["termination"]["max_spend_usd"] * 2}
    assert [p[0] for p in refused(body)] == ["prompt_learning.termination_config.max_total_spend_usd"]


def test_proxy_models_are_the_online_pools_policy_and_need_a_price_under_a_usd_budget() -> None:
    body = shipped()
    body["mipro"]["proxy_models"] = {"model": "sim-tiny"}  # the reference also nests it under mipro
    assert "sim-tiny" in refused(body)[0][1], "a USD budget needs the proxy's price"
    body["pricing"]["sim-tiny"] = {"input_per_mtok": 0.01, "output_per_mtok": 0.02}
    config = parse_config({"prompt_learning": body})
    assert config.policy_for("online").model == "sim-tiny"
    assert config.policy_for("online").inference_url == config.policy.inference_url, (
        "unset keys: the policy's"
    )
    assert {config.policy_for(p).model for p in ("bootstrap", "validation", "test")} == {config.policy.model}


def test_the_reference_example_with_provider_urls_and_default_prices_needs_no_urls() -> None:
    """Its §8.1 example: groq policy without inference_url, flat meta_model keys; a USD budget whose models
    have built-in prices needs no pricing table."""
    body = shipped(pricing=None)
    body["policy"] = {"model": "openai/gpt-oss-20b", "provider": "groq", "temperature": 0.0}
    meta = body["mipro"].pop("meta")
    body["mipro"].update(meta_model="openai/gpt-oss-120b", meta_model_provider="groq")
    assert meta["model"]
    config = parse_config({"prompt_learning": body})
    assert config.policy.inference_url == config.mipro.meta.inference_url == "https://api.groq.com/openai/v1"
    assert config.mipro.meta.api_key_env == "GROQ_API_KEY"
    assert config.price_of("openai/gpt-oss-120b") is not None and config.termination.max_spend_usd


REFERENCE_TOML = Path(__file__).resolve().parents[3] / "shared" / "research" / "synth_task_app.md"


def synth_example() -> dict[str, Any]:
    """synth-ai 0.2.24's examples/blog_posts/mipro/configs/banking77_mipro_local.toml, verbatim as quoted
    in the research notes (§4.1)."""
    text = REFERENCE_TOML.read_text().split("### 4.1 MIPRO example", 1)[1].split("```toml\n", 1)[1]
    return tomllib.loads(text.split("```", 1)[0])


def test_synth_ais_banking77_mipro_toml_fails_naming_each_unsupported_key_and_runs_without_them() -> None:
    raw = synth_example()
    with pytest.raises(MIPROConfigurationError) as info:
        parse_config(raw)
    assert {p[0] for p in info.value.problems} == {
        "prompt_learning.mipro.demo",
        "prompt_learning.mipro.grounding",
        "prompt_learning.mipro.meta_update",
    }
    for table in ("demo", "grounding", "meta_update"):
        del raw["prompt_learning"]["mipro"][table]
    config = parse_config(raw)  # nothing else changed: not even the URLs (groq's are the defaults)
    m = config.mipro
    assert (m.num_iterations, m.batch_size, m.max_instructions, m.tpe.alpha, m.tpe.prior_weight) == (
        5,
        6,
        3,
        1.0,
        0.05,
    )
    assert m.meta.model == "llama-3.3-70b-versatile" and m.meta.inference_url == config.policy.inference_url
    assert m.reference_pool == list(range(50, 60)) and m.val_seeds == m.online_pool, (
        "validation on the online pool"
    )
    assert config.env_config == {"pool": "train"} and config.policy.model_extra == {
        "inference_mode": "synth_hosted"
    }
