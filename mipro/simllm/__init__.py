"""A simulated, deterministic OpenAI-compatible LLM: a weak but teachable classifier and meta-model.

Always labelled as simulated. See DESIGN.md §6.
"""

from mipro.simllm.app import create_app
from mipro.simllm.settings import SimLLMSettings

__all__ = ["SimLLMSettings", "create_app"]
