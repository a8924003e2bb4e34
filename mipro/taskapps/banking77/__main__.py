"""Serve the banking77 task app with uvicorn.

    python -m mipro.taskapps.banking77 --port 8102 [--host 127.0.0.1] [--data-dir DIR]
        [--api-key-env ENVIRONMENT_API_KEY] [--fail-seeds 3,7] [--hang-seeds 5] [--close-seeds 8]
        [--garbage-seeds 9] [--llm-timeout 60] [--no-download]

Fault knobs (tests and demos): --fail-seeds answer 500, --hang-seeds never answer, --close-seeds drop the
connection mid-response, --garbage-seeds answer 200 with a non-JSON body.

The API key is read from the environment variable named by `--api-key-env`; when it is unset the app runs
without auth (and says so in the log). Data: see `mipro.taskapps.banking77.data.load_banking77`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import structlog
import uvicorn

from mipro.taskapps.banking77.app import LLM_TIMEOUT_S, create_app
from mipro.taskapps.banking77.data import load_banking77

log = structlog.get_logger(__name__)


def _seed_set(text: str) -> set[int]:
    try:
        return {int(part) for part in text.split(",") if part.strip()}
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"wants comma-separated integers, got {text!r}") from exc


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mipro.taskapps.banking77", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8102)
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="dir with train.csv, test.csv, categories.json"
    )
    parser.add_argument("--api-key-env", default="ENVIRONMENT_API_KEY", help="env var holding the API key")
    parser.add_argument("--fail-seeds", type=_seed_set, default=set(), help="seeds whose rollouts answer 500")
    parser.add_argument(
        "--hang-seeds", type=_seed_set, default=set(), help="seeds whose rollouts never answer"
    )
    parser.add_argument(
        "--close-seeds", type=_seed_set, default=set(), help="seeds whose connection is dropped mid-response"
    )
    parser.add_argument(
        "--garbage-seeds", type=_seed_set, default=set(), help="seeds answered 200 with a non-JSON body"
    )
    parser.add_argument("--llm-timeout", type=float, default=LLM_TIMEOUT_S, help="seconds per LLM call")
    parser.add_argument("--no-download", action="store_true", help="never try the public download")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    data = load_banking77(args.data_dir, allow_download=not args.no_download)
    api_key = os.environ.get(args.api_key_env) or None
    if api_key is None:
        log.warning("banking77.no_api_key", env_var=args.api_key_env, detail="serving without auth")
    app = create_app(
        data,
        api_key=api_key,
        fail_seeds=args.fail_seeds,
        hang_seeds=args.hang_seeds,
        close_seeds=args.close_seeds,
        garbage_seeds=args.garbage_seeds,
        llm_timeout=args.llm_timeout,
    )
    log.info(
        "banking77.serving",
        host=args.host,
        port=args.port,
        source=data.source,
        fail_seeds=sorted(args.fail_seeds),
        hang_seeds=sorted(args.hang_seeds),
        close_seeds=sorted(args.close_seeds),
        garbage_seeds=sorted(args.garbage_seeds),
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
