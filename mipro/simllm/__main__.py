"""Run the simulated LLM: `python -m mipro.simllm --port 8300 [--profile hard] [--latency-ms 50] ...`.

Settings come from SIMLLM_<FIELD> environment variables, then from these flags.
"""

from __future__ import annotations

import argparse

import uvicorn

from mipro.simllm.app import create_app
from mipro.simllm.settings import SimLLMSettings

FLAGS: dict[str, type] = {
    "profile": str,  # "default" or "hard" (see mipro.simllm.classifier)
    "default_model": str,
    "seed": int,
    "latency_ms": float,
    "latency_jitter_ms": float,
    "rate_429": float,
    "retry_after_s": float,
    "rate_500": float,
    "rate_malformed": float,
    "rate_hang": float,
    "hang_s": float,
    "context_knee_chars": int,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mipro.simllm",
        description="A simulated, deterministic OpenAI-compatible LLM (weak but teachable).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8300)
    parser.add_argument("--log-level", default="warning")
    for name, kind in FLAGS.items():
        default = SimLLMSettings.model_fields[name].default
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=f"default {default}")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> SimLLMSettings:
    return SimLLMSettings.from_env(**{name: getattr(args, name) for name in FLAGS})


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = settings_from(args)
    print(f"simulated LLM (model simulated/{settings.default_model}) on http://{args.host}:{args.port}/v1")
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
