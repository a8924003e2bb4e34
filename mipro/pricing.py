"""Model prices: built-in defaults for common OpenAI and Groq models, extended or overridden by a job's
`pricing` table.

Prices are USD per million tokens, standard tier, uncached input, no batch discount. The defaults were
copied by hand from the providers' public pricing pages (openai.com/api/pricing, groq.com/pricing) as last
checked for this table, `DEFAULTS_CHECKED`; providers change them, so they may be outdated: a job that
depends on exact costs, or sets a USD budget, should give its models' prices in `[prompt_learning.pricing]`,
which always wins over a default.

Models are looked up by the name the job's config gives (`policy.model`, `mipro.meta.model`), exactly as
the provider spells it (Groq's `openai/gpt-oss-20b`, OpenAI's `gpt-4o-mini`); a name neither the config nor
the defaults price costs 0 (and a USD budget then needs it in the config).
"""

from __future__ import annotations

from collections.abc import Mapping

from mipro.config import Price

DEFAULTS_CHECKED = "2025 (OpenAI), 2026-07 (Groq)"


def _p(input_per_mtok: float, output_per_mtok: float) -> Price:
    return Price(input_per_mtok=input_per_mtok, output_per_mtok=output_per_mtok)


OPENAI_DEFAULTS: dict[str, Price] = {
    "gpt-5": _p(1.25, 10.00),
    "gpt-5-mini": _p(0.25, 2.00),
    "gpt-5-nano": _p(0.05, 0.40),
    "gpt-4.1": _p(2.00, 8.00),
    "gpt-4.1-mini": _p(0.40, 1.60),
    "gpt-4.1-nano": _p(0.10, 0.40),
    "gpt-4o": _p(2.50, 10.00),
    "gpt-4o-mini": _p(0.15, 0.60),
    "o3": _p(2.00, 8.00),
    "o3-mini": _p(1.10, 4.40),
    "o4-mini": _p(1.10, 4.40),
    "gpt-3.5-turbo": _p(0.50, 1.50),
}

GROQ_DEFAULTS: dict[str, Price] = {
    "llama-3.1-8b-instant": _p(0.05, 0.08),
    "llama-3.3-70b-versatile": _p(0.59, 0.79),
    "openai/gpt-oss-20b": _p(0.075, 0.30),
    "openai/gpt-oss-120b": _p(0.15, 0.60),
    "meta-llama/llama-4-scout-17b-16e-instruct": _p(0.11, 0.34),
    "meta-llama/llama-4-maverick-17b-128e-instruct": _p(0.20, 0.60),
    "qwen/qwen3-32b": _p(0.29, 0.59),
}

# One flat table: the two providers' model names do not collide.
DEFAULT_PRICING: dict[str, Price] = {**OPENAI_DEFAULTS, **GROQ_DEFAULTS}


def price_table(configured: Mapping[str, Price] | None = None) -> dict[str, Price]:
    """The defaults, extended and overridden by a job's `pricing` table."""
    return {**DEFAULT_PRICING, **(configured or {})}


def price_for(model: str, configured: Mapping[str, Price] | None = None) -> Price | None:
    """The price of `model`: the job's entry, else the built-in default, else None (unpriced)."""
    if configured and model in configured:
        return configured[model]
    return DEFAULT_PRICING.get(model)
