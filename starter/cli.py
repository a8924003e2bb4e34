"""The `mipro` command line: server, worker, start, watch, status, result, pause, resume, cancel, list,
report, demo, stack.

User-facing failures (no such job, no Temporal, a job that failed) are one `error:` line and exit code 1
(2 for an invalid config); `--debug` adds the traceback."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from mipro.errors import MIPROConfigurationError
from mipro.logging_setup import configure_logging
from mipro.process_exit import exit_now

if TYPE_CHECKING:
    from temporalio.client import Client, WorkflowHandle

    from mipro.config import JobConfig
    from mipro.job_models import OptimizationResult
    from mipro.starter.jobs import JobSnapshot


def _cmd_server(args: argparse.Namespace) -> int:
    from mipro.starter.stack import STATE_DIR, dev_server_command, record_ui_port

    STATE_DIR.mkdir(parents=True, exist_ok=True)
    command = dev_server_command(args.port, args.ui_port, STATE_DIR / "temporal.db")
    record_ui_port(args.port, args.ui_port)  # the CLI's links name this UI port
    print(f"Temporal dev server on 127.0.0.1:{args.port}, UI http://localhost:{args.ui_port}", flush=True)
    os.execv(command[0], command)
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    from mipro import worker

    given = ["--address", args.address] if args.address and "--address" not in args.rest else []
    worker.main([*given, *args.rest])
    return 0


class CliError(Exception):
    """A failure the CLI reports in one line (`error: ...`) with an exit code; --debug adds the traceback."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _temporal_address(args: argparse.Namespace) -> str:
    return args.address or os.environ.get("TEMPORAL_ADDRESS", "localhost:7233")


def _namespace() -> str:
    return os.environ.get("TEMPORAL_NAMESPACE", "default")


def _ui_link(args: argparse.Namespace, job_id: str) -> str:
    """The job in the Temporal UI of the server this CLI talks to (its real UI port)."""
    from mipro.starter import jobs

    return jobs.ui_link(job_id, _namespace(), jobs.ui_base(_temporal_address(args)))


def _unreachable(args: argparse.Namespace, reason: str) -> CliError:
    return CliError(
        f"cannot reach Temporal at {_temporal_address(args)} (namespace {_namespace()}): {reason}; "
        "start one with: mipro server (or point --address / TEMPORAL_ADDRESS at yours)"
    )


async def _connect(args: argparse.Namespace) -> Client:
    from mipro.worker import connect

    try:
        return await connect(args.address)
    except RuntimeError as exc:  # the SDK's "Failed client connect: ..." with the transport's error
        text = str(exc)
        reason = "connection refused" if "refused" in text.lower() else text.split("\n")[0][:300]
        raise _unreachable(args, reason) from exc


LIVE_OR_SUCCEEDED = ("created", "running", "paused", "succeeded")
HAS_RESULT = ("succeeded", "stopped_on_errors", "cancelled")  # jobs that ended with a (best-so-far) result


def _exit_code(status: str) -> int:
    """0 while a job is live or once it has succeeded; 1 if it stopped on errors, failed, was cancelled,
    terminated or timed out."""
    return 0 if status in LIVE_OR_SUCCEEDED else 1


async def _final_result(client: Client, job_id: str) -> OptimizationResult:
    """The job's result, waiting for it to end; a job that ended without one is a CliError naming why."""
    from temporalio.client import WorkflowFailureError

    from mipro.starter import jobs

    desc = await jobs.describe(client, job_id)
    if not jobs.is_closed(desc.status):
        waiting = "waiting for it to end (Ctrl-C stops waiting, not the job)"
        print(f"job {job_id} is {jobs.status_of(desc)}: {waiting}", file=sys.stderr)
    try:
        return await jobs.result(client, job_id)
    except WorkflowFailureError as exc:
        desc = await jobs.describe(client, job_id)
        status = jobs.status_of(desc)
        failure = jobs.failure_of(exc)
        if status == "failed":
            raise CliError(f"job {job_id} failed: {failure.type}: {failure.message}") from exc
        raise CliError(f"job {job_id} ended without a result ({status}: {failure.message})") from exc


def _print_outcome(snap: JobSnapshot) -> int:
    from mipro.starter import render

    line = render.outcome_line(snap)
    if snap.status in ("succeeded", "cancelled"):  # stopped_on_errors is an error line (and exit 1)
        print(line)
    else:
        print(f"error: {line}", file=sys.stderr)
    return _exit_code(snap.status)


async def _dry_run(args: argparse.Namespace, config: JobConfig) -> int:
    from mipro.estimate import PromptMeasurement, estimate_job
    from mipro.starter import render
    from mipro.starter.probe import ProbeFailed, measure_baseline_prompt

    measurement: PromptMeasurement | None = None
    not_measured = None
    if args.prompt_tokens is None and not args.no_probe:
        render.console.print(
            f"measuring the rendered prompt with one baseline rollout at {config.task_app_url} "
            "(one rollout, paid like any other; nothing is started in Temporal)"
        )
        try:
            measurement = await measure_baseline_prompt(config)
        except ProbeFailed as exc:
            not_measured = str(exc)
    estimate = estimate_job(config, measurement, prompt_tokens=args.prompt_tokens)
    render.print_estimate(estimate)
    if not_measured:
        render.console.print(f"[bold yellow]warning:[/] the baseline rollout failed: {not_measured}")
    if measurement and measurement.data_source:
        render.console.print(f"task app data: {measurement.data_source}")
        if measurement.data_source.startswith("fallback"):
            render.console.print(
                "[bold yellow]warning:[/] the task app serves its small FALLBACK data set, not the real one"
            )
    return 0


async def _start(args: argparse.Namespace) -> int:
    from mipro.config import load_config_file
    from mipro.starter import jobs, render

    config = load_config_file(Path(args.config), args.set or [])
    if args.dry_run:
        return await _dry_run(args, config)
    client = await _connect(args)
    handle = await jobs.start_job(client, config, job_id=args.job_id, task_queue=args.task_queue)
    print(f"job {handle.id} started\nTemporal UI: {_ui_link(args, handle.id)}", flush=True)
    if not args.watch:
        return 0
    snap = await render.watch(client, handle.id)
    if snap.status in HAS_RESULT:
        render.print_result(await _final_result(client, handle.id), _ui_link(args, handle.id))
    return _print_outcome(snap)


async def _status(args: argparse.Namespace) -> int:
    from mipro.starter import jobs, render

    snap = await jobs.snapshot(await _connect(args), args.job)
    print(json.dumps(snap.as_json(), indent=2) if args.json else render.status_line(snap))
    return _exit_code(snap.status)


async def _result(args: argparse.Namespace) -> int:
    from mipro.starter import render

    r = await _final_result(await _connect(args), args.job)
    if args.json:
        print(r.model_dump_json(indent=2))
    else:
        render.print_result(r, _ui_link(args, args.job))
    if r.status == "stopped_on_errors":  # the best found before the stop, printed; but not a success
        print(f"error: job {args.job} {render.stopped_summary(r)}", file=sys.stderr)
        return 1
    return 0


async def _watch(args: argparse.Namespace) -> int:
    from mipro.starter import render

    return _print_outcome(await render.watch(await _connect(args), args.job))


async def _open_job(args: argparse.Namespace, action: str) -> tuple[Client, WorkflowHandle]:
    """The client and handle of a job still running; a CliError when there is none or it has finished."""
    from mipro.starter import jobs

    client = await _connect(args)
    desc = await jobs.describe(client, args.job)
    if jobs.is_closed(desc.status):
        raise CliError(f"cannot {action} job {args.job}: it has finished ({jobs.status_of(desc)})")
    return client, jobs.handle(client, args.job)


async def _pause_or_resume(args: argparse.Namespace) -> int:
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.service import RPCError

    from mipro.starter import render
    from mipro.workflows.mipro_workflow import MiproWorkflow

    _, handle = await _open_job(args, args.command)
    update = MiproWorkflow.pause if args.command == "pause" else MiproWorkflow.resume
    try:
        progress = await handle.execute_update(update)
    except WorkflowUpdateFailedError as exc:
        raise CliError(f"{args.command} refused: {exc.cause.message if exc.cause else exc}") from exc
    except RPCError as exc:  # e.g. the job finished between the check and the update
        raise CliError(f"{args.command} refused: {exc.message}") from exc
    print(f"{args.command}d: {render.progress_line(progress)}")
    return 0


async def _cancel(args: argparse.Namespace) -> int:
    from mipro.starter import render

    client, handle = await _open_job(args, "cancel")
    await handle.cancel()
    print(f"cancellation requested for {args.job}; in-flight rollouts are being cancelled")
    if args.wait:
        render.print_result(await _final_result(client, args.job), _ui_link(args, args.job))
    return 0


async def _list(args: argparse.Namespace) -> int:
    from mipro.starter import jobs, render

    rows = await jobs.list_jobs(await _connect(args), status=args.status, limit=args.limit)
    render.print_job_list(rows, as_json=args.json)
    return 0


async def _report(args: argparse.Namespace) -> int:
    from mipro.report import render_report

    result = await _final_result(await _connect(args), args.job)
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
    from mipro.starter.demo import run_demo

    return await run_demo(Path(args.config) if args.config else None, args.set or [], app_name=args.app)


STATUSES = (
    "created",
    "running",
    "paused",
    "succeeded",
    "stopped_on_errors",
    "cancelled",
    "failed",
    "terminated",
    "timed_out",
)


async def _stack(args: argparse.Namespace) -> int:
    from mipro.starter.local_stack import PortInUse, run_stack

    try:
        return await run_stack(
            args.app, args.port, args.ui_port, args.llm_port, args.app_port, with_worker=not args.no_worker
        )
    except PortInUse as exc:
        raise CliError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mipro", description="Durable MIPROv2 prompt optimization on Temporal"
    )
    parser.add_argument(
        "--address", default=None, help="Temporal address (default env TEMPORAL_ADDRESS or localhost:7233)"
    )
    parser.add_argument("--debug", action="store_true", help="print tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)
    server = sub.add_parser(
        "server", help="run the embedded Temporal dev server (SQLite under .mipro/, UI :8233)"
    )
    server.add_argument("--port", type=int, default=7233)
    server.add_argument("--ui-port", type=int, default=8233)
    # add_help=False: `mipro worker --help` reaches worker.py's own parser, which lists its options.
    worker = sub.add_parser("worker", help="run a worker (Temporal worker + interceptor)", add_help=False)
    worker.add_argument("rest", nargs=argparse.REMAINDER)
    llm = sub.add_parser(
        "llm-server",
        help="serve a real local LLM (SmolLM2-135M, llama.cpp; needs the local-llm extra)",
        add_help=False,
    )
    llm.add_argument("rest", nargs=argparse.REMAINDER)
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
        "--no-probe",
        action="store_true",
        help="dry run without the baseline rollout that measures the rendered prompt (patterns only)",
    )
    start.add_argument(
        "--prompt-tokens",
        type=int,
        default=None,
        help="dry run: rendered prompt size, no rollout",
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
    listing.add_argument("--status", default=None, choices=STATUSES, help="only jobs with this status")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="JSON (else a table; TSV off a terminal)")
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
    stack = sub.add_parser(
        "stack",
        help="run Temporal, a worker, the simulated LLM and an example task app (one key) until Ctrl-C",
    )
    stack.add_argument("--app", choices=("banking77", "clinc150"), default="banking77")
    stack.add_argument("--port", type=int, default=7233, help="Temporal (an open port is reused)")
    stack.add_argument("--ui-port", type=int, default=8233)
    stack.add_argument("--llm-port", type=int, default=8300, help="simulated LLM (0: any free port)")
    stack.add_argument("--app-port", type=int, default=None, help="task app (default: the config's)")
    stack.add_argument("--no-worker", action="store_true", help="start no worker (run `mipro worker`)")
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


def _report_error(args: argparse.Namespace, exc: Exception) -> int:
    """One `error:` line for the failures a user meets (no job, no Temporal, a job that failed); anything
    else is a bug and keeps its traceback."""
    from temporalio.service import RPCError, RPCStatusCode

    from mipro.starter.jobs import JobNotFound

    if isinstance(exc, JobNotFound):
        exc = CliError(f"{exc} (Temporal namespace {_namespace()} at {_temporal_address(args)})")
    elif isinstance(exc, RPCError):
        unavailable = exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
        exc = _unreachable(args, exc.message) if unavailable else CliError(f"Temporal: {exc.message}")
    if not isinstance(exc, CliError):
        raise exc
    if args.debug:
        traceback.print_exception(exc.__cause__ or exc)
    print(f"error: {exc}", file=sys.stderr)
    return exc.code


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
    "stack": _stack,
}


def _run(argv: list[str]) -> int:
    """Parse `argv`, run the command; its exit code (one `error:` line for what a user meets)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command in ("worker", "llm-server"):  # they parse their own options (and --help)
        args.rest = argv[argv.index(args.command) + 1 :]
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    configure_logging(default="WARNING")  # `mipro worker` configures again: $MIPRO_LOG_LEVEL, else INFO
    try:
        if args.command == "server":
            return _cmd_server(args)
        if args.command == "worker":
            return _cmd_worker(args)
        if args.command == "llm-server":
            from mipro import llm_server

            return llm_server.main(args.rest)
        if args.command == "api":
            return _cmd_api(args)
        if args.command == "api-key":
            return _cmd_api_key(args)
        return asyncio.run(ASYNC_COMMANDS[args.command](args))
    except MIPROConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: asyncio.run has cancelled the command; no traceback
        job = getattr(args, "job", None)
        watching = args.command == "watch" or getattr(args, "watch", False)
        hint = f": job {job} keeps running (`mipro watch {job}` follows it again)" if job else ""
        print(f"interrupted{hint}" if watching else "interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - every other failure is one line, the traceback with --debug
        return _report_error(args, exc)


INTERRUPTED = 130  # 128 + SIGINT, as shells report a command stopped by Ctrl-C


def _exit_code_of(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> None:
    """The `mipro` program. Run as the program (`argv` None: the console script, `python -m
    mipro.starter`), it exits without finalizing the interpreter (`exit_now`); called with `argv` (tests,
    embedding), it raises SystemExit as usual."""
    program = argv is None
    try:
        code = _run(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # argparse (--help, a usage error), worker.main
        if not program:
            raise
        code = _exit_code_of(exc)
    except BaseException:  # a bug (its traceback), or Ctrl-C outside a command
        if not program:
            raise
        traceback.print_exc()
        code = 1
    if program:
        exit_now(code)
    # In-process: a reported error's traceback holds frames that hold the Temporal client: free them now,
    # while the interpreter is alive.
    gc.collect()
    sys.exit(code)


if __name__ == "__main__":
    main()
