"""Run an example task app as its real command line (`python -m mipro.taskapps.<app> --port 0`) for tests.

The app is ready when uvicorn prints `Uvicorn running on http://127.0.0.1:<port>` on stderr; everything the
app wrote to stderr before that line is its startup output (the WARNING lines tests look for).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

READY_RE = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")
# Variables a test app must not inherit from the test session (conftest sets ENVIRONMENT_API_KEY).
SCRUBBED = ("ENVIRONMENT_API_KEY", "BANKING77_DATA_DIR", "CLINC150_DATA_DIR", "MIPRO_DATASETS_DIR")
GUARD_S = 60.0  # a hung app is killed after this (a guard, not a synchronisation)


@dataclass
class AppProcess:
    proc: subprocess.Popen[str]
    url: str | None
    startup: list[str] = field(default_factory=list)  # stderr lines up to (and with) the ready line

    @property
    def startup_text(self) -> str:
        return "".join(self.startup)

    def warnings(self) -> list[str]:
        return [line.rstrip("\n") for line in self.startup if line.startswith("WARNING: ")]


def app_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This environment without the keys and data dirs, with an empty cache under `tmp_path`, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env["MIPRO_CACHE_DIR"] = str(tmp_path / "cache")
    env.update(extra)
    return env


@contextmanager
def running_app(app: str, args: list[str], env: Mapping[str, str], cwd: Path) -> Iterator[AppProcess]:
    """Start the app; yield once it serves (url set) or has exited (url None, startup has its stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", f"mipro.taskapps.{app}", "--port", "0", *args],
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    guard = threading.Timer(GUARD_S, proc.kill)
    guard.start()
    assert proc.stderr is not None
    started = AppProcess(proc, None)
    try:
        for line in proc.stderr:  # ends at EOF when the app exits before serving
            started.startup.append(line)
            if match := READY_RE.search(line):
                started.url = match.group(1)
                break
        if started.url is not None:  # keep draining so the app never blocks on a full pipe
            threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield started
    finally:
        guard.cancel()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
