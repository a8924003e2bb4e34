"""Serve the CLINC150 task app with uvicorn.

    python -m mipro.taskapps.clinc150 --port 8103 [--host 127.0.0.1] [--data-dir DIR] [--include-oos]
        [--api-key-env ENVIRONMENT_API_KEY] [--fail-seeds 3,7] [--hang-seeds 5] [--close-seeds 8]
        [--garbage-seeds 9] [--llm-timeout 60] [--unstated-answer-format]

Fault knobs as for banking77 (`mipro.taskapps.service`); --unstated-answer-format drops the answer format
from the prompt while the scorer still requires `Intent: <label>`. Data: `load_clinc150`
(`--data-dir`, else CLINC150_DATA_DIR, else ../shared/datasets/clinc150 beside the checkout).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import structlog
import uvicorn

from mipro.taskapps.cli import FAULT_KNOBS, api_key_from, knobs_from, task_app_parser
from mipro.taskapps.clinc150.app import create_app
from mipro.taskapps.clinc150.data import load_clinc150

log = structlog.get_logger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = task_app_parser("python -m mipro.taskapps.clinc150", __doc__.split("\n")[0], 8103)
    parser.add_argument("--data-dir", type=Path, default=None, help="dir with data_full.json")
    parser.add_argument("--include-oos", action="store_true", help="keep the out-of-scope rows (label oos)")
    parser.add_argument(
        "--unstated-answer-format",
        action="store_true",
        help="the prompt does not say how to answer (the scorer still wants 'Intent: <label>')",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        data = load_clinc150(args.data_dir, include_oos=args.include_oos)
    except FileNotFoundError as exc:  # no fallback set: say where it looked, in one line
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    app = create_app(
        data,
        api_key_from(args, "clinc150"),
        args.fail_seeds,
        state_answer_format=not args.unstated_answer_format,
        **knobs_from(args),
    )
    knobs = {name: sorted(getattr(args, name)) for name in FAULT_KNOBS}
    log.info("clinc150.serving", host=args.host, port=args.port, source=data.source, **knobs)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
