"""Telling an overlapped search that an iteration's batch is near its end.

Once the batch's rollouts still waiting for a slot fit in one wave (`lead`: the job's `max_concurrent`),
its slots start to free up within about two rollout times. That is when the next iteration should be
launched: its activity then arrives while this one still queues rollouts (its own queue behind them, by
priority), so no slot idles however long the launch takes up to a rollout time, and this batch's scores so
far (most of them) are what the next TPE suggestion learns from. `DrainWatch` counts the rollouts still to
start and, when at most `lead` are left, sends the scores once in the background. Best effort: if the
signal is lost, the workflow launches the next iteration when this one lands, as a synchronous search does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from temporalio import activity

from mipro.activity_models import BATCH_DRAINING_SIGNAL, BatchDraining

log = structlog.get_logger("activities.draining")

Sender = Callable[[BatchDraining], Awaitable[None]]


class DrainWatch:
    """`to_start` rollouts to go; `started(n)` as they get their slots (or will never run). When at most
    `lead` are left, `notice()` is sent by `send` (None: nothing is sent)."""

    def __init__(
        self, to_start: int, lead: int, notice: Callable[[], BatchDraining], send: Sender | None
    ) -> None:
        self._left = to_start
        self._lead = lead
        self._notice = notice
        self._send = send
        self.sending: asyncio.Task[None] | None = None

    def started(self, n: int = 1) -> None:
        self._left -= n
        if self._left <= self._lead and self._send is not None and self.sending is None:
            self.sending = asyncio.create_task(_deliver(self._send, self._notice()))

    def close(self) -> None:
        """The batch is over: a signal still on its way is moot (its results reach the workflow anyway)."""
        if self.sending is not None and not self.sending.done():
            self.sending.cancel()


async def _deliver(send: Sender, notice: BatchDraining) -> None:
    try:
        await send(notice)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the workflow then waits for the batch's results instead
        log.warning("draining signal not delivered", batch=notice.label, error=str(exc))


async def signal_workflow(notice: BatchDraining) -> None:
    """Signal the workflow run that started the current activity."""
    info = activity.info()
    handle = activity.client().get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)
    await handle.signal(BATCH_DRAINING_SIGNAL, notice)
