"""Config parsing and validation: every bad config names the field and the fix."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from mipro.config import apply_overrides, load_config_file, parse_config
from mipro.errors import MIPROConfigurationError

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "banking77.toml"


def example() -> dict:
    return tomllib.loads(EXAMPLE.read_text())


def problems(raw: dict) -> str:
    with pytest.raises(MIPROConfigurationError) as info:
        parse_config(raw)
    return str(info.value)


def test_example_config_parses_with_defaults() -> None:
    config = load_config_file(EXAMPLE)
    assert config.mipro.batch_size == 24
    assert config.mipro.tpe.gamma == 0.25
    assert config.stages()[0].stage_id == "default"
    assert config.stages()[0].baseline_instruction.startswith("You are an expert banking assistant")
    assert config.pricing["sim-small"].input_per_mtok == 0.05


def test_json_config_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(example()))
    assert load_config_file(path).mipro.seed == 7


def test_overrides_parse_toml_values() -> None:
    raw = apply_overrides(
        example(),
        ["mipro.batch_size=8", "policy.temperature=0.5", 'task_app_id="x"', "prompt_learning.mipro.seed=3"],
    )
    config = parse_config(raw)
    assert (config.mipro.batch_size, config.policy.temperature, config.task_app_id, config.mipro.seed) == (
        8,
        0.5,
        "x",
        3,
    )


def test_bad_override_syntax_is_refused() -> None:
    with pytest.raises(MIPROConfigurationError, match="key.path=value"):
        apply_overrides(example(), ["mipro.batch_size"])


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("mipro.batch_size=0", "prompt_learning.mipro.batch_size"),
        ("mipro.num_iterations=-1", "prompt_learning.mipro.num_iterations"),
        ("mipro.bogus_key=1", "prompt_learning.mipro.bogus_key"),
        ("policy.temperature=9", "prompt_learning.policy.temperature"),
        ("mipro.tpe.gamma=1.5", "prompt_learning.mipro.tpe.gamma"),
        ("termination.max_spend_usd=-2", "prompt_learning.termination.max_spend_usd"),
        ("mipro.online_pool=[]", "prompt_learning.mipro.online_pool"),
    ],
)
def test_invalid_values_name_the_field(override: str, field: str) -> None:
    text = problems(apply_overrides(example(), [override]))
    assert field in text


def test_missing_required_field_is_named_with_a_fix() -> None:
    raw = example()
    del raw["prompt_learning"]["task_app_url"]
    text = problems(raw)
    assert "prompt_learning.task_app_url" in text and "add it to the config" in text


def test_test_pool_must_be_held_out() -> None:
    raw = example()
    raw["prompt_learning"]["mipro"]["test_pool"][0] = raw["prompt_learning"]["mipro"]["online_pool"][0]
    assert "test_pool overlaps online_pool" in problems(raw)


def test_batch_larger_than_online_pool_is_refused() -> None:
    assert "batch_size (500) is larger than online_pool" in problems(
        apply_overrides(example(), ["mipro.batch_size=500"])
    )


def test_usd_budget_needs_prices() -> None:
    raw = example()
    del raw["prompt_learning"]["pricing"]["sim-small"]
    assert "pricing has no entry for model 'sim-small'" in problems(raw)


def test_inline_task_app_key_never_reaches_the_job() -> None:
    raw = example()
    raw["prompt_learning"]["task_app_api_key"] = "sk_env_secret"
    config = parse_config(raw)
    assert "sk_env_secret" not in config.model_dump_json()
    assert config.task_app_api_key_env == "ENVIRONMENT_API_KEY"


def test_synth_flat_meta_model_keys_are_accepted() -> None:
    raw = example()
    mipro = raw["prompt_learning"]["mipro"]
    del mipro["meta"]
    mipro["meta_model"] = "sim-meta"
    mipro["meta_model_provider"] = "simulated"
    config = parse_config(raw)
    assert config.mipro.meta.model == "sim-meta"
    assert config.mipro.meta.inference_url == config.policy.inference_url


def test_stage_baseline_must_appear_in_prompt() -> None:
    raw = apply_overrides(
        example(), ['mipro.stages=[{stage_id="a", baseline_instruction="not in the prompt"}]']
    )
    assert "mipro.stages[0].baseline_instruction is not found" in problems(raw)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[prompt_learning\n")
    with pytest.raises(MIPROConfigurationError, match="cannot parse"):
        load_config_file(bad)
    with pytest.raises(MIPROConfigurationError, match="not found"):
        load_config_file(tmp_path / "missing.toml")


def test_a_job_too_long_to_carry_is_refused_before_it_starts() -> None:
    too_long = ["mipro.num_iterations=400", "mipro.num_evaluations_per_iteration=8"]
    assert "plans 3200 trials, more than the 3000" in problems(apply_overrides(example(), too_long))
    capped = [*too_long, "termination.max_trials_allowed=3000"]
    parse_config(apply_overrides(example(), capped))  # the cap makes it fit: accepted
