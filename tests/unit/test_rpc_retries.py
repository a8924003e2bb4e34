"""Raw Temporal service calls made by the starter are retried on transient statuses only."""

import pytest
from temporalio.service import RPCError, RPCStatusCode

from mipro.starter.jobs import call_with_retries


class FlakyCall:
    def __init__(self, failures: list[RPCStatusCode]) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise RPCError("injected", self.failures.pop(0), b"")
        return "ok"


async def test_a_cancelled_call_on_a_rotated_connection_is_retried() -> None:
    call = FlakyCall([RPCStatusCode.CANCELLED, RPCStatusCode.UNAVAILABLE])
    assert await call_with_retries(call) == "ok"
    assert call.calls == 3


async def test_a_permanent_error_is_raised_at_once() -> None:
    call = FlakyCall([RPCStatusCode.PERMISSION_DENIED])
    with pytest.raises(RPCError):
        await call_with_retries(call)
    assert call.calls == 1


async def test_retries_are_bounded() -> None:
    call = FlakyCall([RPCStatusCode.CANCELLED] * 10)
    with pytest.raises(RPCError):
        await call_with_retries(call, attempts=3)
    assert call.calls == 3
