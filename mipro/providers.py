"""Providers whose OpenAI-compatible base URL and key variable are known, and how a model config without
its own URL gets one: the provider's, else the job policy's."""

from __future__ import annotations

from typing import Any

# A policy naming one of these without an `inference_url` gets its URL and key variable. Any other
# OpenAI-compatible server (vLLM, llama.cpp's `mipro llm-server`, a gateway) is named by its `inference_url`
# and, if it wants a key, `api_key_env`, whatever its provider.
PROVIDER_DEFAULTS: dict[str, tuple[str, str]] = {
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "groq": ("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
}


def with_provider_defaults(data: Any) -> Any:
    """A model config's raw dict with `provider` lower-cased (default openai); openai and groq without an
    `inference_url` get their base URL and key variable. An explicit `inference_url` never gets a default
    key variable: a provider's key is sent only where the config says."""
    if not isinstance(data, dict) or not isinstance(data.get("provider", "openai"), str):
        return data
    data = {**data, "provider": data.get("provider", "openai").strip().lower()}
    if not data.get("inference_url") and data["provider"] in PROVIDER_DEFAULTS:
        url, key_env = PROVIDER_DEFAULTS[data["provider"]]
        data["inference_url"] = url
        data.setdefault("api_key_env", key_env)
    return data


def inherited_upstream(
    inference_url: str | None,
    api_key_env: str | None,
    provider: str | None,
    policy: tuple[str, str | None, str],
) -> tuple[str, str | None, str]:
    """(URL, key variable, provider) of a model config that may leave its URL to others (the judge, a
    stage's own policy): its own `inference_url`; else, naming another known provider than the policy's,
    that provider's URL (and key variable unless set); else the policy's (url, key_env, provider)."""
    policy_url, policy_key_env, policy_provider = policy
    if inference_url:
        return inference_url, api_key_env, provider or policy_provider
    if provider in PROVIDER_DEFAULTS and provider != policy_provider:
        url, key_env = PROVIDER_DEFAULTS[provider]
        return url, api_key_env or key_env, provider
    return policy_url, api_key_env or policy_key_env, provider or policy_provider
