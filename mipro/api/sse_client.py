"""Reading the API's Server-Sent Events stream with httpx: one parser for clients, tests and benchmarks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx


async def sse_messages(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """Messages of a `text/event-stream` body as dicts ({id, event, data}); a comment line is {comment}.

    Several `data:` lines of one message are joined with newlines, as the SSE specification says.
    """
    message: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if message:
                yield message
            message = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            message[name] = f"{message[name]}\n{value}" if name in message else value
