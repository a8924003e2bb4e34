"""Serve the banking77 pipeline task app (domain router -> intent classifier) with uvicorn.

    python -m mipro.taskapps.banking77_pipeline --port 8104 [--host 127.0.0.1] [--data-dir DIR]
        [--api-key-env ENVIRONMENT_API_KEY] [--no-stage-urls] [--ignore-prompt-template]
        [--fail-seeds 3,7] [--hang-seeds 5] [--close-seeds 8] [--garbage-seeds 9] [--llm-timeout 60]
        [--no-download]

--no-stage-urls: call the LLM at the plain inference URL (no `/stage/<stage_id>` segment; the interceptor
then tells the stages apart by their baseline instructions). --ignore-prompt-template: do not render the
candidate the request carries in `policy.config.prompt_template` (the interceptor applies it). Fault knobs
and data as for banking77 (`python -m mipro.taskapps.banking77 --help`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import structlog
import uvicorn

from mipro.taskapps.banking77.data import fallback_warning, load_banking77
from mipro.taskapps.banking77_pipeline.app import create_app
from mipro.taskapps.cli import FAULT_KNOBS, api_key_from, knobs_from, startup_warning, task_app_parser

log = structlog.get_logger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = task_app_parser("python -m mipro.taskapps.banking77_pipeline", __doc__.split("\n")[0], 8104)
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="dir with train.csv, test.csv, categories.json"
    )
    parser.add_argument("--no-download", action="store_true", help="never try the public download")
    parser.add_argument(
        "--no-stage-urls", action="store_true", help="no /stage/<stage_id> segment in the LLM calls' URLs"
    )
    parser.add_argument(
        "--ignore-prompt-template",
        action="store_true",
        help="do not render the candidate carried in policy.config.prompt_template",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    data = load_banking77(args.data_dir, allow_download=not args.no_download)
    if warning := fallback_warning(data):
        startup_warning(warning)
    app = create_app(
        data,
        api_key_from(args, "banking77_pipeline"),
        args.fail_seeds,
        stage_urls=not args.no_stage_urls,
        read_prompt_template=not args.ignore_prompt_template,
        **knobs_from(args),
    )
    knobs = {name: sorted(getattr(args, name)) for name in FAULT_KNOBS}
    log.info("banking77_pipeline.serving", host=args.host, port=args.port, source=data.source, **knobs)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
