"""DrainWatch: the notice goes out once, when at most `lead` rollouts are left to start; a failed signal is
logged, never raised into the batch."""

from __future__ import annotations

import asyncio

import pytest

from mipro.activities.draining import DrainWatch
from mipro.activity_models import BatchDraining


def notice() -> BatchDraining:
    return BatchDraining(label="iteration-0001", scores={"trial-0003": {1: 0.5}})


async def test_sent_once_when_the_rollouts_left_fit_in_the_lead() -> None:
    sent: list[BatchDraining] = []

    async def send(n: BatchDraining) -> None:
        sent.append(n)

    watch = DrainWatch(10, 3, notice, send)
    for _ in range(6):
        watch.started()
    assert watch.sending is None, "7 left, over the lead of 3"
    watch.started()
    watch.started(3)  # an item that ends with rollouts it never started
    assert watch.sending is not None
    await watch.sending
    assert sent == [notice()]


async def test_a_failed_signal_is_logged_not_raised() -> None:
    async def send(n: BatchDraining) -> None:
        raise RuntimeError("the server is gone")

    watch = DrainWatch(1, 0, notice, send)
    watch.started()
    assert watch.sending is not None
    await watch.sending  # no exception
    assert watch.sending.done() and watch.sending.exception() is None


async def test_close_drops_a_signal_still_on_its_way() -> None:
    gate = asyncio.Event()

    async def send(n: BatchDraining) -> None:
        await gate.wait()

    watch = DrainWatch(2, 1, notice, send)
    watch.started()
    assert watch.sending is not None
    watch.close()
    with pytest.raises(asyncio.CancelledError):
        await watch.sending
    assert watch.sending.cancelled()


def test_without_a_sender_nothing_is_sent() -> None:
    watch = DrainWatch(1, 0, notice, None)
    watch.started()
    assert watch.sending is None
