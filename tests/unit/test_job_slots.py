"""A job's rollout slots on one worker (`PrioritySlots`): never more than `size` held, a freed slot goes
to the waiting rollout of the lowest priority number (the oldest batch), first come first served within
one, and a cancelled waiter neither blocks the others nor loses a slot."""

from __future__ import annotations

import asyncio

from mipro.activities.job_slots import PrioritySlots


async def hold(slots: PrioritySlots, priority: int, order: list[str], name: str, go: asyncio.Event) -> None:
    async with slots.slot(priority):
        order.append(name)
        await go.wait()


async def test_a_freed_slot_goes_to_the_oldest_batch_then_first_come_first_served() -> None:
    slots, order, go = PrioritySlots(1), [], asyncio.Event()
    holder = asyncio.create_task(hold(slots, 0, order, "holder", go))
    await asyncio.sleep(0)  # the holder takes the free slot
    waiters = [
        asyncio.create_task(hold(slots, priority, order, name, go))
        for priority, name in [(2, "newer-1"), (1, "older-1"), (2, "newer-2"), (1, "older-2")]
    ]
    await asyncio.sleep(0)  # all four are waiting
    assert order == ["holder"]
    go.set()
    await asyncio.gather(holder, *waiters)
    assert order == ["holder", "older-1", "older-2", "newer-1", "newer-2"]


async def test_never_more_than_size_at_once() -> None:
    slots, peak, held = PrioritySlots(3), 0, 0

    async def rollout(priority: int) -> None:
        nonlocal peak, held
        async with slots.slot(priority):
            held += 1
            peak = max(peak, held)
            await asyncio.sleep(0)
            held -= 1

    await asyncio.gather(*(rollout(i % 4) for i in range(40)))
    assert peak == 3 and held == 0


async def test_a_cancelled_waiter_is_skipped_and_the_slot_is_not_lost() -> None:
    slots, order, go = PrioritySlots(1), [], asyncio.Event()
    holder = asyncio.create_task(hold(slots, 0, order, "holder", go))
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(hold(slots, 0, order, "cancelled", go))
    later = asyncio.create_task(hold(slots, 5, order, "later", go))
    await asyncio.sleep(0)
    cancelled.cancel()
    go.set()
    await asyncio.gather(holder, later)
    assert order == ["holder", "later"] and cancelled.cancelled()
    async with slots.slot(0):  # the one slot is free again
        pass
