"""Built-in model prices, the job's pricing over them, and providers configured the same way."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mipro.budget import price_usd
from mipro.config import Price, parse_config
from mipro.errors import MIPROConfigurationError
from mipro.interceptor.registry import Upstream
from mipro.pricing import DEFAULT_PRICING, GROQ_DEFAULTS, OPENAI_DEFAULTS, price_for, price_table
from mipro.providers import PROVIDER_DEFAULTS

REPO = Path(__file__).resolve().parents[2]


def test_defaults_cover_common_openai_and_groq_models() -> None:
    for model in ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-5-mini"):
        assert model in OPENAI_DEFAULTS
    for model in ("llama-3.1-8b-instant", "llama-3.3-70b-versatile", "openai/gpt-oss-20b"):
        assert model in GROQ_DEFAULTS
    assert not set(OPENAI_DEFAULTS) & set(GROQ_DEFAULTS), "one flat table: the names must not collide"
    for model, price in DEFAULT_PRICING.items():
        assert 0 < price.input_per_mtok <= price.output_per_mtok < 100, model


def test_the_jobs_pricing_extends_and_overrides_the_defaults() -> None:
    mine = {
        "gpt-4o-mini": Price(input_per_mtok=9.0, output_per_mtok=9.0),
        "my-model": Price(input_per_mtok=1.0, output_per_mtok=1.0),
    }
    table = price_table(mine)
    assert table["gpt-4o-mini"] == mine["gpt-4o-mini"], "the job's entry wins"
    assert table["my-model"] == mine["my-model"], "and adds models"
    assert table["gpt-4o"] == DEFAULT_PRICING["gpt-4o"], "the rest are the defaults"
    assert price_for("gpt-4o-mini", mine) == mine["gpt-4o-mini"]
    assert price_for("gpt-4o-mini") == DEFAULT_PRICING["gpt-4o-mini"]
    assert price_for("sim-small") is None
    # 1M input and 1M output tokens cost the two prices.
    price = DEFAULT_PRICING["gpt-4o-mini"]
    assert price_usd(table, "gpt-4o", 1_000_000, 0) == DEFAULT_PRICING["gpt-4o"].input_per_mtok
    assert price_usd({"gpt-4o-mini": price}, "gpt-4o-mini", 0, 1_000_000) == price.output_per_mtok


def test_upstream_takes_the_jobs_price_else_the_default() -> None:
    mine = Price(input_per_mtok=3.0, output_per_mtok=4.0)
    assert Upstream(base_url="http://x/v1", model="gpt-4o-mini", price=mine).price == mine
    assert Upstream(base_url="http://x/v1", model="gpt-4o-mini").price == DEFAULT_PRICING["gpt-4o-mini"]
    assert Upstream(base_url="http://x/v1", model="sim-small").price is None


def shipped_config(**policy: Any) -> dict[str, Any]:
    raw = tomllib.loads((REPO / "configs" / "banking77.toml").read_text())
    body = copy.deepcopy(raw)
    body["prompt_learning"]["policy"] = {"model": "llama-3.1-8b-instant", **policy}
    body["prompt_learning"]["termination"] = {"max_duration_minutes": 30}  # no USD budget
    return body


@pytest.mark.parametrize("provider", ["groq", "Groq", "openai"])
def test_openai_and_groq_need_only_the_model(provider: str) -> None:
    config = parse_config(shipped_config(provider=provider))
    url, key_env = PROVIDER_DEFAULTS[provider.lower()]
    assert config.policy.provider == provider.lower()
    assert config.policy.inference_url == url and config.policy.api_key_env == key_env
    assert url.startswith("https://") and url.endswith("/v1")


def test_any_openai_compatible_url_is_configured_the_same_way() -> None:
    config = parse_config(
        shipped_config(provider="vllm", inference_url="http://10.0.0.5:8000/v1", api_key_env="VLLM_KEY")
    )
    assert (
        config.policy.inference_url == "http://10.0.0.5:8000/v1" and config.policy.api_key_env == "VLLM_KEY"
    )


def test_an_explicit_url_never_gets_a_default_key() -> None:
    """A provider's key goes only where the config says: openai with a URL of its own sends no key unless
    api_key_env names one (the shipped configs run the simulated LLM this way)."""
    config = parse_config(shipped_config(provider="openai", inference_url="http://127.0.0.1:8300/v1"))
    assert config.policy.api_key_env is None


def test_other_providers_need_an_inference_url() -> None:
    with pytest.raises(MIPROConfigurationError) as caught:
        parse_config(shipped_config(provider="openai-compatible"))
    assert "policy.inference_url" in str(caught.value)


def test_provider_names_are_checked() -> None:
    with pytest.raises(MIPROConfigurationError) as caught:
        parse_config(shipped_config(provider="my provider!", inference_url="http://x/v1"))
    assert "policy.provider" in str(caught.value)
