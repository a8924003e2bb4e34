"""The command line shared by the example task apps: host, port, API key, fault knobs, LLM timeout."""

from __future__ import annotations

import argparse
import os
import sys

import structlog

from mipro.taskapps.service import LLM_TIMEOUT_S, Knobs

log = structlog.get_logger(__name__)
FAULT_KNOBS = ("fail_seeds", "hang_seeds", "close_seeds", "garbage_seeds")


def seed_set(text: str) -> set[int]:
    try:
        return {int(part) for part in text.split(",") if part.strip()}
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"wants comma-separated integers, got {text!r}") from exc


def task_app_parser(prog: str, description: str, port: int) -> argparse.ArgumentParser:
    """A parser with the options every example task app takes; the app adds its data options."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--api-key-env", default="ENVIRONMENT_API_KEY", help="env var holding the API key")
    parser.add_argument("--fail-seeds", type=seed_set, default=set(), help="seeds whose rollouts answer 500")
    parser.add_argument(
        "--hang-seeds", type=seed_set, default=set(), help="seeds whose rollouts never answer"
    )
    parser.add_argument(
        "--close-seeds", type=seed_set, default=set(), help="seeds whose connection is dropped mid-response"
    )
    parser.add_argument(
        "--garbage-seeds", type=seed_set, default=set(), help="seeds answered 200 with a non-JSON body"
    )
    parser.add_argument("--llm-timeout", type=float, default=LLM_TIMEOUT_S, help="seconds per LLM call")
    return parser


def startup_warning(message: str) -> None:
    """Say `message` where whoever started the app sees it: one `WARNING:` line on stderr."""
    print(f"WARNING: {message}", file=sys.stderr, flush=True)


def no_key_warning(app_id: str, env_var: str) -> str:
    """What an app started without its API key says (it then serves without auth)."""
    return (
        f"{env_var} is not set: this {app_id} task app accepts UNAUTHENTICATED requests (every route, "
        f"/rollout included, is open to anyone who can reach it). To require a key, start it with "
        f"`export {env_var}=sk_env_...` (the same key the worker has; `mipro stack` shares one), or name "
        f"another variable with --api-key-env."
    )


def api_key_from(args: argparse.Namespace, app_id: str) -> str | None:
    """The API key from the environment variable named by `--api-key-env` (None: serve without auth, and
    warn on stderr)."""
    api_key = os.environ.get(args.api_key_env) or None
    if api_key is None:
        log.warning(f"{app_id}.no_api_key", env_var=args.api_key_env, detail="serving without auth")
        startup_warning(no_key_warning(app_id, args.api_key_env))
    return api_key


def knobs_from(args: argparse.Namespace) -> Knobs:
    """The knobs but `fail_seeds` (an argument of its own), as keyword arguments of the app's `create_app`."""
    return Knobs(
        hang_seeds=args.hang_seeds,
        close_seeds=args.close_seeds,
        garbage_seeds=args.garbage_seeds,
        llm_timeout=args.llm_timeout,
    )
