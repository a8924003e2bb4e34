"""The `mipro` command line: server, worker, start, watch, status, result, pause, resume, cancel, list,
report, demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from mipro.errors import MIPROConfigurationError
from mipro.logging_setup import configure_logging


def _cmd_server(args: argparse.Namespace) -> int:
    from starter.stack import STATE_DIR, dev_server_command

    STATE_DIR.mkdir(parents=True, exist_ok=True)
    command = dev_server_command(args.port, args.ui_port, STATE_DIR / "temporal.db")
    print(f"Temporal dev server on 127.0.0.1:{args.port}, UI http://localhost:{args.ui_port}", flush=True)
    os.execv(command[0], command)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    import worker

    given = ["--address", args.address] if args.address and "--address" not in args.rest else []
    worker.main([*given, *args.rest])
    return 0


async def _start(args: argparse.Namespace) -> int:
    from mipro.config import load_config_file
    from starter import jobs, render
    from worker import connect

    config = load_config_file(Path(args.config), args.set or [])
    if args.dry_run:
        from mipro.estimate import estimate_job

        render.print_estimate(estimate_job(config, args.prompt_tokens))
        return 0
    client = await connect(args.address)
    handle = await jobs.start_job(client, config, job_id=args.job_id, task_queue=args.task_queue)
    print(f"job {handle.id} started\nTemporal UI: {jobs.ui_link(handle.id)}", flush=True)
    if args.watch:
        await render.watch(client, handle.id)
        render.print_result(await jobs.result(client, handle.id), jobs.ui_link(handle.id))
    return 0


async def _status(args: argparse.Namespace) -> int:
    from starter import jobs, render
    from worker import connect

    p = await jobs.progress(await connect(args.address), args.job)
    print(p.model_dump_json(indent=2) if args.json else render.progress_line(p))
    return 0


async def _result(args: argparse.Namespace) -> int:
    from starter import jobs, render
    from worker import connect

    r = await jobs.result(await connect(args.address), args.job)
    if args.json:
        print(r.model_dump_json(indent=2))
    else:
        render.print_result(r, jobs.ui_link(args.job))
    return 0


async def _watch(args: argparse.Namespace) -> int:
    from starter import render
    from worker import connect

    await render.watch(await connect(args.address), args.job)
    return 0


async def _pause_or_resume(args: argparse.Namespace) -> int:
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.service import RPCError

    from starter import jobs, render
    from worker import connect
    from workflows.mipro_workflow import MiproWorkflow

    handle = jobs.handle(await connect(args.address), args.job)
    update = MiproWorkflow.pause if args.command == "pause" else MiproWorkflow.resume
    try:
        progress = await handle.execute_update(update)
    except WorkflowUpdateFailedError as exc:
        print(f"error: {args.command} refused: {exc.cause.message if exc.cause else exc}", file=sys.stderr)
        return 1
    except RPCError as exc:  # e.g. the job has already finished
        print(f"error: {args.command} refused: {exc.message}", file=sys.stderr)
        return 1
    print(f"{args.command}d: {render.progress_line(progress)}")
    return 0


async def _cancel(args: argparse.Namespace) -> int:
    from starter import jobs, render
    from worker import connect

    client = await connect(args.address)
    await jobs.handle(client, args.job).cancel()
    print(f"cancellation requested for {args.job}; in-flight rollouts are being cancelled")
    if args.wait:
        render.print_result(await jobs.result(client, args.job), jobs.ui_link(args.job))
    return 0


async def _list(args: argparse.Namespace) -> int:
    from starter import jobs, render
    from worker import connect

    rows = await jobs.list_jobs(await connect(args.address), status=args.status, limit=args.limit)
    render.print_job_list(rows)
    return 0


async def _report(args: argparse.Namespace) -> int:
    from mipro.report import render_report
    from starter import jobs
    from worker import connect

    result = await jobs.result(await connect(args.address), args.job)
    Path(args.out).write_text(render_report(result))
    print(f"report written to {args.out}")
    return 0


def _cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from mipro.api.app import create_app
    from mipro.api.settings import ApiSettings

    settings = ApiSettings.from_env()
    given = {"data_dir": args.data_dir, "api_keys_file": args.keys_file, "task_queue": args.task_queue}
    given["temporal_address"] = args.address
    settings = ApiSettings.model_validate(
        {**settings.model_dump(), **{k: v for k, v in given.items() if v is not None}}
    )
    app = create_app(settings)
    if not app.state.keys:
        raise MIPROConfigurationError(
            [
                (
                    "MIPRO_API_KEYS / MIPRO_API_KEYS_FILE",
                    "no API keys configured, so no request could be authorised",
                    "create one with `mipro api-key ORG` and set MIPRO_API_KEYS=ORG:KEY (or --keys-file)",
                )
            ]
        )
    print(f"REST API on http://{args.host}:{args.port}/api/prompt-learning/online (docs: /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _cmd_api_key(args: argparse.Namespace) -> int:
    import json

    from mipro.api.auth import hash_key, new_key

    key = new_key()
    print(f"key (shown once; give it to the client):  {key}")
    print(f"for the environment:                       MIPRO_API_KEYS={args.org}:{key}")
    print(
        f"for the keys file (hash only):             {json.dumps({'org': args.org, 'sha256': hash_key(key)})}"
    )
    return 0


async def _demo(args: argparse.Namespace) -> int:
    from starter.demo import run_demo

    return await run_demo(Path(args.config) if args.config else None, args.set or [], app_name=args.app)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mipro", description="Durable MIPROv2 prompt optimization on Temporal"
    )
    parser.add_argument(
        "--address", default=None, help="Temporal address (default env TEMPORAL_ADDRESS or localhost:7233)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    server = sub.add_parser(
        "server", help="run the embedded Temporal dev server (SQLite under .mipro/, UI :8233)"
    )
    server.add_argument("--port", type=int, default=7233)
    server.add_argument("--ui-port", type=int, default=8233)
    # add_help=False: `mipro worker --help` reaches worker.py's own parser, which lists its options.
    worker = sub.add_parser("worker", help="run a worker (Temporal worker + interceptor)", add_help=False)
    worker.add_argument("rest", nargs=argparse.REMAINDER)
    start = sub.add_parser("start", help="validate a config and start a job")
    start.add_argument("config")
    start.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override, e.g. mipro.batch_size=8"
    )
    start.add_argument("--watch", action="store_true", help="show live progress until the job ends")
    start.add_argument("--job-id", default=None)
    start.add_argument(
        "--dry-run", action="store_true", help="print the planned rollouts, calls, tokens and cost"
    )
    start.add_argument(
        "--prompt-tokens", type=int, default=None, help="rendered baseline prompt size (dry run)"
    )
    start.add_argument("--task-queue", default="mipro")
    for name, helptext in (
        ("status", "print a job's progress"),
        ("result", "print a job's result"),
        ("watch", "live progress until the job ends"),
    ):
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("job")
        if name != "watch":
            cmd.add_argument("--json", action="store_true")
    for name, helptext in (("pause", "pause a job: no new trial starts"), ("resume", "resume a paused job")):
        sub.add_parser(name, help=helptext).add_argument("job")
    cancel = sub.add_parser("cancel", help="cancel a job; it keeps the best result found so far")
    cancel.add_argument("job")
    cancel.add_argument("--wait", action="store_true", help="wait for and print the cancelled result")
    listing = sub.add_parser("list", help="list jobs (Temporal visibility)")
    listing.add_argument("--status", default=None, help="running, paused, succeeded, cancelled, ...")
    listing.add_argument("--limit", type=int, default=50)
    report = sub.add_parser("report", help="write a self-contained HTML report of a finished job")
    report.add_argument("job")
    report.add_argument("--out", default="report.html")
    api = sub.add_parser("api", help="run the REST jobs API (keys: MIPRO_API_KEYS or --keys-file)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument(
        "--data-dir", default=None, help="saved configs (default .mipro/api, env MIPRO_API_DATA_DIR)"
    )
    api.add_argument(
        "--keys-file", default=None, help='JSON {"keys": [{"org", "sha256"}]} (MIPRO_API_KEYS_FILE)'
    )
    api.add_argument("--task-queue", default=None, help="task queue of new jobs (default mipro)")
    sub.add_parser("api-key", help="print a new API key for an org, and its hash").add_argument("org")
    demo = sub.add_parser("demo", help="run one full optimization on the embedded stack (simulated LLM)")
    demo.add_argument(
        "--app",
        choices=("banking77", "clinc150"),
        default="banking77",
        help="example task app (and configs/<app>.toml unless --config)",
    )
    demo.add_argument("--config", default=None)
    demo.add_argument("--set", action="append", metavar="KEY=VALUE")
    return parser


ASYNC_COMMANDS = {
    "start": _start,
    "status": _status,
    "result": _result,
    "watch": _watch,
    "pause": _pause_or_resume,
    "resume": _pause_or_resume,
    "cancel": _cancel,
    "list": _list,
    "report": _report,
    "demo": _demo,
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command == "worker":
        args.rest = argv[argv.index("worker") + 1 :]  # worker.py parses its own options (and --help)
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    configure_logging(default="WARNING")  # `mipro worker` configures again: $MIPRO_LOG_LEVEL, else INFO
    try:
        if args.command == "server":
            code = _cmd_server(args)
        elif args.command == "worker":
            code = _cmd_worker(args)
        elif args.command == "api":
            code = _cmd_api(args)
        elif args.command == "api-key":
            code = _cmd_api_key(args)
        else:
            code = asyncio.run(ASYNC_COMMANDS[args.command](args))
    except MIPROConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
