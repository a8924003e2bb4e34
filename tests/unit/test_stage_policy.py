"""A stage's own policy (`policy`, or the reference's `policy_config`, on a stage entry): where its calls go
(its URL, else its provider's, else the job policy's with the job's key), at its price, under the USD
budget's pricing check; refused with the proxy models and when a key is unknown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mipro.activity_models import RolloutTarget
from mipro.config import JobConfig, load_config_file
from mipro.errors import MIPROConfigurationError
from tests.conftest import REPO

PIPELINE = REPO / "configs" / "banking77_pipeline.toml"


def pipeline(tmp_path: Path, router_policy: dict[str, Any] | None, *overrides: str) -> JobConfig:
    """configs/banking77_pipeline.toml with the router stage's policy table replaced."""
    text = PIPELINE.read_text()
    start = text.index("[prompt_learning.mipro.modules.stages.policy]")
    end = text.index("\n\n", start)
    table = ""
    if router_policy is not None:
        lines = [f"{k} = {v!r}".replace("'", '"') for k, v in router_policy.items()]
        table = "[prompt_learning.mipro.modules.stages.policy]\n" + "\n".join(lines)
    path = tmp_path / "pipeline.toml"
    path.write_text(text[:start] + table + text[end:])
    return load_config_file(path, list(overrides))


def router_upstream(config: JobConfig) -> Any:
    return RolloutTarget.from_config(config).stage_policies.get("router")


def test_the_shipped_pipeline_routes_its_router_to_a_model_of_its_own(tmp_path: Path) -> None:
    config = load_config_file(PIPELINE, ['policy.inference_url="http://llm.test/v1"'])
    own = router_upstream(config)
    assert (own.model, own.inference_url, own.api_key_env) == ("sim-router", "http://llm.test/v1", None)
    assert own.price is not None and own.price.input_per_mtok == 0.02
    assert own.body_overrides == {"max_completion_tokens": 64}
    assert set(RolloutTarget.from_config(config).stage_policies) == {"router"}, "the classifier: the job's"


def test_without_its_own_url_a_stage_takes_its_providers_or_else_the_jobs_with_the_jobs_key(
    tmp_path: Path,
) -> None:
    keyed = ['policy.api_key_env="JOB_KEY"']
    inherit = router_upstream(pipeline(tmp_path, {"model": "sim-router"}, *keyed))
    assert (inherit.inference_url, inherit.api_key_env) == ("http://127.0.0.1:8300/v1", "JOB_KEY")
    groq = router_upstream(pipeline(tmp_path, {"model": "sim-router", "provider": "GROQ"}, *keyed))
    assert (groq.inference_url, groq.api_key_env) == ("https://api.groq.com/openai/v1", "GROQ_API_KEY")
    own = router_upstream(
        pipeline(tmp_path, {"model": "sim-router", "inference_url": "http://own.test/v1"}, *keyed)
    )
    assert (own.inference_url, own.api_key_env) == ("http://own.test/v1", None), "no key sent elsewhere"
    hot = router_upstream(pipeline(tmp_path, {"model": "sim-router", "temperature": 0.5}))
    assert hot.body_overrides == {"temperature": 0.5}


def test_the_references_policy_config_spelling_is_the_same_setting(tmp_path: Path) -> None:
    text = PIPELINE.read_text().replace(
        "[prompt_learning.mipro.modules.stages.policy]",
        "[prompt_learning.mipro.modules.stages.policy_config]",
    )
    path = tmp_path / "spelled.toml"
    path.write_text(text)
    assert router_upstream(load_config_file(path)).model == "sim-router"


def test_unknown_keys_proxy_models_and_unpriced_models_under_a_budget_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MIPROConfigurationError, match="top_p"):
        pipeline(tmp_path, {"model": "m", "top_p": 0.9})
    with pytest.raises(MIPROConfigurationError, match="proxy_models and a stage's own policy"):
        pipeline(tmp_path, {"model": "sim-router"}, 'proxy_models.model="sim-small"')
    with pytest.raises(MIPROConfigurationError, match="'unpriced-model'"):
        pipeline(tmp_path, {"model": "unpriced-model"})  # the shipped config sets max_spend_usd


def test_extra_prompt_text_is_priced_at_the_priciest_policy_model(tmp_path: Path) -> None:
    config = pipeline(
        tmp_path,
        {"model": "dear"},
        "pricing.dear={input_per_mtok=5.0, output_per_mtok=1.0}",
    )
    assert config.prompt_price() is not None and config.prompt_price().input_per_mtok == 5.0
    assert load_config_file(REPO / "configs" / "banking77.toml").prompt_price() == load_config_file(
        REPO / "configs" / "banking77.toml"
    ).price_of("sim-small")
