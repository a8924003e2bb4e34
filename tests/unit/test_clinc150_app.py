"""The CLINC150 example task app over real HTTP: a scripted OpenAI-compatible upstream and the app, each
served by BackgroundServer on loopback. Data: the shared clinc150 copy (never copied into the repo)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from mipro.rollout_protocol import advertised_seed_ranges
from mipro.serving import BackgroundServer
from mipro.taskapps.clinc150 import Clinc150Data, create_app, load_clinc150
from mipro.taskapps.clinc150.__main__ import parse_args
from mipro.taskapps.clinc150.data import SHARED_DIR
from mipro.taskapps.clinc150.prompts import SYSTEM_PATTERN

KEY = "sk_env_clinc_test"


class ScriptedLLM:
    """Answers every chat completion with `reply` (the row's label in a template) and records requests."""

    def __init__(self) -> None:
        self.reply = "Intent: {label}"
        self.labels: dict[str, str] = {}  # query -> label, for the template
        self.requests: list[dict[str, Any]] = []

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> dict[str, Any]:
            body = await request.json()
            self.requests.append(body)
            query = body["messages"][-1]["content"].split("\n", 1)[0].removeprefix("Request: ")
            content = self.reply.format(label=self.labels.get(query, "no_such_intent"))
            return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}

        return app


@pytest.fixture(scope="module")
def data() -> Clinc150Data:
    return load_clinc150(SHARED_DIR)


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[ScriptedLLM, str]]:
    llm = ScriptedLLM()
    with BackgroundServer(llm.app()) as server:
        yield llm, f"{server.url}/v1"


@pytest.fixture
def llm(scripted: tuple[ScriptedLLM, str], data: Clinc150Data) -> ScriptedLLM:
    fake = scripted[0]
    fake.__init__()  # type: ignore[misc]
    fake.labels = {row.text: row.label for row in data.split("train")[:50]}
    return fake


@pytest.fixture
def app_url(data: Clinc150Data) -> Iterator[str]:
    with BackgroundServer(create_app(data, api_key=KEY)) as server:
        yield server.url


def rollout(app_url: str, seed: int, llm_url: str, split: str | None = None) -> httpx.Response:
    env = {"env_name": "clinc150", "seed": seed, "config": {"split": split} if split else {}}
    policy = {"policy_name": "clinc150-mipro", "config": {"model": "m", "inference_url": llm_url}}
    body = {"run_id": f"run-{seed}", "env": env, "policy": policy, "mode": "eval"}
    return httpx.post(f"{app_url}/rollout", json=body, headers={"X-API-Key": KEY}, timeout=30)


def test_loader_reads_the_shared_dir_and_shuffles_each_split_once(data: Clinc150Data) -> None:
    assert len(data.labels) == 150 and "oos" not in data.labels
    assert {split: len(rows) for split, rows in data.splits.items()} == {
        "train": 15000,
        "val": 3000,
        "test": 4500,
    }
    assert data.source == f"dir:{SHARED_DIR}" and len(data.domains) == 10
    assert load_clinc150(SHARED_DIR).split("train")[:100] == data.split("train")[:100], "a fixed order"
    first = Counter(row.label for row in data.split("train")[:40])
    assert len(first) >= 30, "contiguous seeds are label-mixed (the file is grouped by label)"
    assert data.seed_ranges() == {"train": [0, 14999], "val": [0, 2999], "test": [0, 4499]}
    assert "oos" in load_clinc150(SHARED_DIR, include_oos=True).labels


def test_loader_takes_the_env_dir_and_names_a_missing_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    doc = {
        "train": [["wake me at 7", "alarm"], ["set an alarm", "alarm"]],
        "val": [],
        "test": [["hi", "greeting"]],
    }
    (tmp_path / "data_full.json").write_text(json.dumps(doc))
    monkeypatch.setenv("CLINC150_DATA_DIR", str(tmp_path))
    small = load_clinc150()
    assert small.labels == ["alarm", "greeting"] and small.source == f"dir:{tmp_path}"
    assert small.seed_ranges() == {"train": [0, 1], "test": [0, 0]}
    with pytest.raises(FileNotFoundError, match="missing"):
        load_clinc150(tmp_path / "nowhere")


def test_task_info_advertises_seed_ranges_and_the_answer_format(app_url: str) -> None:
    taskset = httpx.get(f"{app_url}/task_info", headers={"X-API-Key": KEY}).json()["taskset"]
    assert taskset["seed_ranges"]["train"] == [0, 14999] and taskset["num_labels"] == 150
    assert "`Intent: <label>`" in taskset["description"]
    assert advertised_seed_ranges({"taskset": taskset}, "train") == [(0, 14999)]
    assert advertised_seed_ranges({"taskset": taskset}, "test") == [(0, 4499)]
    assert advertised_seed_ranges({"taskset": taskset}, "validation") is None
    one = httpx.get(f"{app_url}/task_info", params={"seed": 3}, headers={"X-API-Key": KEY}).json()
    assert one["dataset"]["index"] == 3 and one["task_metadata"]["answer_format"] == "Intent: <label>"
    assert httpx.get(f"{app_url}/task_info").status_code == 400, "the key is required"


def test_rollout_reads_intent_label_from_plain_text(
    app_url: str, llm: ScriptedLLM, scripted: tuple[ScriptedLLM, str], data: Clinc150Data
) -> None:
    row = data.split("train")[7]
    r = rollout(app_url, 7, scripted[1])
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["metrics"]["mean_return"] == 1.0 and out["trajectories"][0]["env_id"] == "clinc150::train::7"
    sent = llm.requests[-1]
    assert "tools" not in sent and sent["messages"][0]["content"] == SYSTEM_PATTERN
    user = sent["messages"][1]["content"]
    assert user.startswith(f"Request: {row.text}\n\nReply with 'Intent: <label>' using one of: ")
    assert user.endswith(", ".join(data.labels))
    info = out["trajectories"][0]["steps"][0]["info"]
    assert (info["expected_intent"], info["predicted_intent"]) == (row.label, row.label)


@pytest.mark.parametrize("reply", ["{label}", '{{"intent": "{label}"}}', "The intent is {label}."])
def test_an_answer_in_another_format_scores_zero(
    app_url: str, llm: ScriptedLLM, scripted: tuple[ScriptedLLM, str], reply: str
) -> None:
    llm.reply = reply
    out = rollout(app_url, 7, scripted[1]).json()
    step = out["trajectories"][0]["steps"][0]
    assert out["metrics"]["mean_return"] == 0.0 and step["info"]["predicted_intent"] is None


def test_seeds_past_the_split_are_refused_not_wrapped(
    app_url: str, llm: ScriptedLLM, scripted: tuple[ScriptedLLM, str]
) -> None:
    for seed, split in ((15000, None), (3000, "val"), (-1, None)):
        r = rollout(app_url, seed, scripted[1], split)
        assert r.status_code == 400 and r.json()["detail"]["error"]["code"] == "seed_out_of_range", r.text
    assert llm.requests == [], "no LLM call for a refused seed"
    assert rollout(app_url, 2999, scripted[1], "val").status_code == 200


def test_unstated_answer_format_knob(
    data: Clinc150Data, llm: ScriptedLLM, scripted: tuple[ScriptedLLM, str]
) -> None:
    with BackgroundServer(create_app(data, api_key=KEY, state_answer_format=False)) as server:
        llm.reply = "{label}"
        bare = rollout(server.url, 7, scripted[1]).json()
        llm.reply = "Intent: {label}"
        prefixed = rollout(server.url, 7, scripted[1]).json()
    assert "Reply with" not in llm.requests[0]["messages"][1]["content"]
    assert (bare["metrics"]["mean_return"], prefixed["metrics"]["mean_return"]) == (0.0, 1.0)


def test_cli_options() -> None:
    args = parse_args(["--fail-seeds", "1,2", "--include-oos", "--unstated-answer-format"])
    assert (args.port, args.fail_seeds, args.include_oos, args.unstated_answer_format) == (
        8103,
        {1, 2},
        True,
        True,
    )
