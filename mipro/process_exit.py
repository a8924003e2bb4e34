"""Ending a process that used the Temporal SDK without finalizing the interpreter."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import NoReturn


def exit_now(code: int) -> NoReturn:
    """End the process without finalizing the interpreter, once everything written is flushed.

    The Temporal SDK runs its client on a Rust (tokio) runtime whose threads outlive the command: a thread
    finishing the Python side of an RPC (a completed or cancelled call's future) needs the GIL, and at
    interpreter finalization it either aborts the process (`Fatal Python error: PyGILState_Release: ...
    finalizing`, exit 134) or hangs it forever (finalization drops the runtime, which waits for that very
    thread, parked by PyO3). The SDK has no way to close a client or shut its runtime down, so `mipro`
    and the worker do not finalize: nothing they need runs at exit (files are closed, servers stopped by
    their context managers, output flushed here).
    """
    logging.shutdown()  # flush log handlers
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more can be said
            stream.flush()
    os._exit(code)
