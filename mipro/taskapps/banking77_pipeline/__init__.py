"""Example two-stage task app over banking77: a domain router (stage `router`) then an intent classifier
within the routed domain (stage `classifier`), each calling the policy LLM through the interceptor with
its stage in the URL. The reward is the final intent's correctness.

Run it with `python -m mipro.taskapps.banking77_pipeline --port 8104`; build it in code with
`create_app(load_banking77(data_dir))`; optimize it with `configs/banking77_pipeline.toml`.
"""

from mipro.taskapps.banking77_pipeline.app import create_app
from mipro.taskapps.banking77_pipeline.domains import DOMAINS, domain_of
from mipro.taskapps.banking77_pipeline.prompts import CLASSIFIER, ROUTER

__all__ = ["CLASSIFIER", "DOMAINS", "ROUTER", "create_app", "domain_of"]
