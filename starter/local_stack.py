"""`mipro stack`: the hand-run stack in one command, until Ctrl-C.

A job needs four things running: a Temporal server, a worker, the task app and the LLM it calls. This
starts (or reuses) the Temporal dev server, and starts the simulated LLM, an example task app (banking77
or clinc150, over the same data `mipro demo` finds) and a worker, all on 127.0.0.1, with ONE task-app key
(ENVIRONMENT_API_KEY, generated unless set) shared by the app and the worker. The ports are those the
shipped configs name, so `mipro start configs/<app>.toml --watch` runs against it from another shell.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from pathlib import Path

from mipro.serving import BackgroundServer
from mipro.simllm.app import create_app as create_simllm
from mipro.simllm.settings import SimLLMSettings
from mipro.starter import render
from mipro.starter.demo import CONFIGS, demo_task_app
from mipro.starter.stack import dev_server, port_open
from mipro.worker import WorkerOptions, connect, running_worker

APP_PORTS = {"banking77": 8102, "clinc150": 8103}  # as in configs/<app>.toml
LLM_PORT = 8300


class PortInUse(Exception):
    pass


def _serve(app: object, port: int, what: str) -> BackgroundServer:
    if port and port_open("127.0.0.1", port):
        raise PortInUse(f"port {port} ({what}) is in use: is a stack already running? (or pass another port)")
    return BackgroundServer(app, port=port)


def start_command(app_name: str, app_url: str, llm_url: str) -> str:
    """The `mipro start` line for this stack (with --set only for ports the config does not name)."""
    sets = []
    if app_url != f"http://127.0.0.1:{APP_PORTS[app_name]}":
        sets.append(f"--set 'task_app_url=\"{app_url}\"'")
    if llm_url != f"http://127.0.0.1:{LLM_PORT}":
        sets += [
            f"--set 'policy.inference_url=\"{llm_url}/v1\"'",
            f"--set 'mipro.meta.inference_url=\"{llm_url}/v1\"'",
        ]
    config = CONFIGS / f"{app_name}.toml"
    here = Path.cwd()
    shown = config.relative_to(here) if config.is_relative_to(here) else config
    return " ".join(["mipro start", str(shown), *sets, "--watch"])


async def run_stack(
    app_name: str = "banking77",
    temporal_port: int = 7233,
    ui_port: int = 8233,
    llm_port: int = LLM_PORT,
    app_port: int | None = None,
    with_worker: bool = True,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Run the stack until SIGINT/SIGTERM (or `stop` is set); `ready` is set once everything serves."""
    key = os.environ.get("ENVIRONMENT_API_KEY") or ""
    generated = not key
    if generated:  # the in-process worker reads it from here, as any worker does
        key = os.environ["ENVIRONMENT_API_KEY"] = f"sk_env_{secrets.token_hex(12)}"
    app_port = APP_PORTS[app_name] if app_port is None else app_port
    llm_server = _serve(create_simllm(SimLLMSettings()), llm_port, "simulated LLM")
    app_server = _serve(demo_task_app(app_name, key), app_port, f"{app_name} task app")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (RuntimeError, ValueError):  # not the main thread (tests): `stop` is set by the caller
            break
    try:
        return await _run(
            app_name, temporal_port, ui_port, llm_server, app_server, with_worker, ready, stop, key, generated
        )
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


async def _run(
    app_name: str,
    temporal_port: int,
    ui_port: int,
    llm_server: BackgroundServer,
    app_server: BackgroundServer,
    with_worker: bool,
    ready: asyncio.Event | None,
    stop: asyncio.Event,
    key: str,
    generated: bool,
) -> int:
    reused = port_open("127.0.0.1", temporal_port)
    with dev_server(temporal_port, ui_port) as address, llm_server as llm, app_server as app:
        client = await connect(address)
        lines = [
            f"Temporal     {address} "
            + ("(already running: reused)" if reused else f"(dev server, UI http://localhost:{ui_port})"),
            f"LLM          {llm.url}/v1 (SIMULATED: mipro.simllm)",
            f"task app     {app.url} ({app_name})",
            f"task-app key ENVIRONMENT_API_KEY={key}"
            + (" (generated; export it wherever you run `mipro worker` or `--dry-run`)" if generated else ""),
        ]
        if with_worker:
            async with running_worker(client, WorkerOptions()):
                lines.append("worker       task queue mipro, in this process")
                await _serve_until(stop, ready, lines, app_name, app.url, llm.url)
        else:
            lines.append("worker       none (--no-worker): start one with `mipro worker` and the key above")
            await _serve_until(stop, ready, lines, app_name, app.url, llm.url)
    return 0


async def _serve_until(
    stop: asyncio.Event, ready: asyncio.Event | None, lines: list[str], app: str, app_url: str, llm_url: str
) -> None:
    for line in lines:
        render.console.print(line, highlight=False, soft_wrap=True)
    render.console.print(
        f"stack ready; in another shell: {start_command(app, app_url, llm_url)}   (Ctrl-C stops the stack)",
        highlight=False,
        soft_wrap=True,
    )
    if ready is not None:
        ready.set()
    await stop.wait()
