"""Serve the banking77 task app with uvicorn.

    python -m mipro.taskapps.banking77 --port 8102 [--host 127.0.0.1] [--data-dir DIR]
        [--api-key-env ENVIRONMENT_API_KEY] [--fail-seeds 3,7] [--hang-seeds 5] [--close-seeds 8]
        [--garbage-seeds 9] [--llm-timeout 60] [--no-download]

Fault knobs (tests and demos): --fail-seeds answer 500, --hang-seeds never answer, --close-seeds drop the
connection mid-response, --garbage-seeds answer 200 with a non-JSON body.

The API key is read from the environment variable named by `--api-key-env`; when it is unset the app runs
without auth (and says so: a WARNING line on stderr). Data: `--data-dir`, else BANKING77_DATA_DIR, else
../shared/datasets/banking77 beside the checkout, else the cache or a download, else the 12-intent fallback
set (a WARNING line on stderr, and /health's `data_source` says so); see
`mipro.taskapps.banking77.data.load_banking77`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import structlog
import uvicorn

from mipro.taskapps.banking77.app import create_app
from mipro.taskapps.banking77.data import fallback_warning, load_banking77
from mipro.taskapps.cli import FAULT_KNOBS, api_key_from, knobs_from, startup_warning, task_app_parser

log = structlog.get_logger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = task_app_parser("python -m mipro.taskapps.banking77", __doc__.split("\n")[0], 8102)
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="dir with train.csv, test.csv, categories.json"
    )
    parser.add_argument("--no-download", action="store_true", help="never try the public download")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    data = load_banking77(args.data_dir, allow_download=not args.no_download)
    if warning := fallback_warning(data):
        startup_warning(warning)
    app = create_app(data, api_key_from(args, "banking77"), args.fail_seeds, **knobs_from(args))
    knobs = {name: sorted(getattr(args, name)) for name in FAULT_KNOBS}
    log.info("banking77.serving", host=args.host, port=args.port, source=data.source, **knobs)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
