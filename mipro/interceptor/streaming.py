"""Reading a streamed chat completion (`stream: true`, Server-Sent Events) while it is relayed unchanged.

The interceptor hands every byte on as it arrives; this reader looks at the same bytes to learn what the
call produced: the assistant message (content and tool-call deltas of choice 0, joined), whether the stream
finished (`data: [DONE]` or a finish_reason), and its usage when the provider sent one: OpenAI and most
compatible servers put it in a last chunk when the request has `stream_options: {include_usage: true}`
(some, e.g. vLLM, in every chunk: the last wins), Groq in `x_groq.usage`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mipro.interceptor.upstream import valid_message

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\n|\r")
MAX_EVENT_BYTES = 4 * 1024 * 1024  # one event larger than this is not parsed (still relayed)


class StreamReader:
    """Feed it the stream's bytes in any chunking; read `message`, `usage`, `finished`, `error` after."""

    def __init__(self) -> None:
        self._buffer = b""
        self.events = 0
        self.bytes = 0
        self.done = False  # saw `data: [DONE]`
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.error: str | None = None  # an error event inside the stream, or an unreadable chunk
        self.model: str | None = None
        self._role: str | None = None
        self._content: list[str] = []
        self._tool_calls: dict[int, dict[str, Any]] = {}

    def feed(self, data: bytes) -> None:
        self.bytes += len(data)
        self._buffer += data
        while match := _EVENT_END.search(self._buffer):
            event, self._buffer = self._buffer[: match.start()], self._buffer[match.end() :]
            self._event(event)
        if len(self._buffer) > MAX_EVENT_BYTES:
            self.error = self.error or f"a stream event over {MAX_EVENT_BYTES} bytes"
            self._buffer = b""

    def close(self) -> None:
        """The stream ended: an event not followed by a blank line still counts."""
        if self._buffer.strip():
            self._event(self._buffer)
        self._buffer = b""

    @property
    def finished(self) -> bool:
        return self.done or self.finish_reason is not None

    def _event(self, raw: bytes) -> None:
        lines = [line for line in _LINE.split(raw) if line and not line.startswith(b":")]
        data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
        if not data:
            return
        payload = b"\n".join(data).strip()
        self.events += 1
        if payload == b"[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(payload)
        except (ValueError, RecursionError):
            self.error = self.error or f"unreadable stream chunk: {payload[:120]!r}"
            return
        if isinstance(chunk, dict):
            self._chunk(chunk)

    def _chunk(self, chunk: dict[str, Any]) -> None:
        if chunk.get("error") is not None:
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else error
            self.error = f"upstream error in the stream: {str(message)[:300]}"
        if isinstance(chunk.get("model"), str):
            self.model = chunk["model"]
        usage = chunk.get("usage")
        groq = chunk.get("x_groq")
        if not isinstance(usage, dict) and isinstance(groq, dict) and isinstance(groq.get("usage"), dict):
            usage = groq["usage"]
        if isinstance(usage, dict):
            self.usage = usage
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self._choice(choice)

    def _choice(self, choice: dict[str, Any]) -> None:
        if isinstance(choice.get("finish_reason"), str):
            self.finish_reason = choice["finish_reason"]
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return
        if isinstance(delta.get("role"), str):
            self._role = delta["role"]
        if isinstance(delta.get("content"), str):
            self._content.append(delta["content"])
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                self._tool_call(call)

    def _tool_call(self, part: dict[str, Any]) -> None:
        index = part.get("index", len(self._tool_calls))
        index = index if isinstance(index, int) else len(self._tool_calls)
        call = self._tool_calls.setdefault(index, {"function": {"name": "", "arguments": ""}})
        for key in ("id", "type"):
            if isinstance(part.get(key), str):
                call[key] = part[key]
        function = part.get("function")
        if not isinstance(function, dict):
            return
        name = function.get("name")
        # OpenAI sends the name once; llama.cpp's server repeats it in every delta: a repeat is not a piece.
        if isinstance(name, str) and name != call["function"]["name"]:
            call["function"]["name"] += name
        if isinstance(function.get("arguments"), str):
            call["function"]["arguments"] += function["arguments"]

    def message(self) -> dict[str, Any] | None:
        """The assistant message the stream carried (None if it carried none we can read)."""
        if self._role is None and not self._content and not self._tool_calls:
            return None
        message: dict[str, Any] = {
            "role": self._role or "assistant",
            "content": "".join(self._content) if self._content or not self._tool_calls else None,
        }
        if self._tool_calls:
            calls = [self._tool_calls[i] for i in sorted(self._tool_calls)]
            message["tool_calls"] = [{"type": "function", **c} for c in calls]
        return message if valid_message(message) else None
