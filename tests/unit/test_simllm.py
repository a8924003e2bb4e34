"""The simulated LLM over real HTTP on 127.0.0.1: formats, determinism, teachability, faults, meta-model.

The last test measures the weak-but-teachable behaviour on the real Banking77 data (run with -s to see
the numbers).
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from mipro.compile import inject_demos
from mipro.proposer import (
    ProposalContext,
    ScoredInstruction,
    build_proposal_messages,
    build_summary_messages,
    parse_instruction,
    query_part,
)
from mipro.serving import BackgroundServer
from mipro.simllm import SimLLMSettings, create_app
from mipro.types import ChatMessage, FewShotExample

LABELS = ["card_arrival", "card_delivery_estimate", "lost_or_stolen_card", "terminate_account"]
LABELS += ["transfer_into_account", "exchange_rate"]
LABEL_LIST = "\n".join(f"{i + 1}. {label}" for i, label in enumerate(LABELS))


def tool(name: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    parameters = {"type": "object", "properties": props, "required": required}
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def call_example(i: int, text: str, label: str, name: str = "classify") -> FewShotExample:
    """A demo answered by a tool call `name({"intent": label})`."""
    call = {
        "id": f"c{i}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps({"intent": label})},
    }
    answer = ChatMessage(role="assistant", tool_calls=[call])
    return FewShotExample(seed=i, stage_id="default", input=text, answer=answer, score=1.0)


CLASSIFY = tool("classify", {"intent": {"type": "string"}}, ["intent"])
SYSTEM = "You classify customer queries into intents."
MECHANICS = SimLLMSettings(zero_shot_confusion=0.0)  # no zero-shot confusion: scores alone decide


@contextmanager
def serve(settings: SimLLMSettings) -> Iterator[httpx.Client]:
    with BackgroundServer(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def llm() -> Iterator[httpx.Client]:
    with serve(MECHANICS) as client:
        yield client


def user(query: str) -> str:
    return f"Customer Query: {query}\n\nAvailable Intents:\n{LABEL_LIST}\n\nClassify this query."


def body(query: str, system: str = SYSTEM, tools: bool = True, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": "gpt-test",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user(query)}],
    }
    if tools:
        out |= {"tools": [CLASSIFY], "tool_choice": "required"}
    return out | extra


def post(client: httpx.Client, payload: dict[str, Any], path: str = "/v1/chat/completions") -> dict[str, Any]:
    response = client.post(path, json=payload)
    assert response.status_code == 200, response.text
    assert response.headers["x-simulated-llm"] == "true"
    return response.json()


def label_of(reply: dict[str, Any]) -> str:
    message = reply["choices"][0]["message"]
    if message.get("tool_calls"):
        return json.loads(message["tool_calls"][0]["function"]["arguments"])["intent"]
    return message["content"]


def test_health_and_models_are_labelled_simulated(llm: httpx.Client) -> None:
    health = llm.get("/health")
    assert health.status_code == 200 and health.json()["simulated"] is True
    models = llm.get("/v1/models")
    assert models.headers["x-simulated-llm"] == "true"
    assert all(m["id"].startswith("simulated/") for m in models.json()["data"])


def test_deterministic_and_labelled(llm: httpx.Client) -> None:
    payload = body("my card was stolen yesterday")
    first, second = post(llm, payload), post(llm, payload)
    third = post(llm, payload, path="/chat/completions")
    assert first["choices"] == second["choices"] == third["choices"]
    assert first["usage"] == second["usage"]
    assert first["model"] == "simulated/gpt-test" and first["system_fingerprint"] == "simulated"
    assert label_of(first) == "lost_or_stolen_card"


def test_tool_call_format(llm: httpx.Client) -> None:
    reply = post(llm, body("what is the exchange rate today"))
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "classify" and call["id"]
    assert json.loads(call["function"]["arguments"]) == {"intent": "exchange_rate"}


def test_named_tool_choice_and_enum_labels(llm: httpx.Client) -> None:
    team = {"type": "string", "enum": ["cards", "fx_rates"]}
    other = tool("route", {"note": {"type": "integer"}, "team": team}, ["note", "team"])
    payload = {
        "messages": [{"role": "user", "content": "Query: exchange rates please"}],
        "tools": [CLASSIFY, other],
        "tool_choice": {"type": "function", "function": {"name": "route"}},
    }
    call = post(llm, payload)["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "route"
    assert json.loads(call["function"]["arguments"])["team"] in {"cards", "fx_rates"}


def test_plain_text_format(llm: httpx.Client) -> None:
    reply = post(llm, body("I want to terminate my account", tools=False))
    assert reply["choices"][0]["message"]["content"] == "terminate_account"
    assert reply["choices"][0]["finish_reason"] == "stop"
    no_tool = post(llm, body("I want to terminate my account", tool_choice="none"))
    assert no_tool["choices"][0]["message"]["content"] == "terminate_account"


def test_dspy_marker_format(llm: httpx.Client) -> None:
    system = (
        "Your input fields are:\n1. `text` (str)\nYour output fields are:\n"
        f"1. `intent` (Literal[{', '.join(repr(x) for x in LABELS)}])\n"
        "All interactions will be structured in the following way, with the appropriate values filled in.\n\n"
        "[[ ## text ## ]]\n{text}\n\n[[ ## intent ## ]]\n{intent}\n\n[[ ## completed ## ]]\n"
        "In adhering to this structure, your objective is: Classify the intent."
    )
    query = (
        "[[ ## text ## ]]\nmy card got stolen\n\nRespond with the corresponding output fields, starting "
        "with the field `[[ ## intent ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`."
    )
    payload = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": query}]}
    content = post(llm, payload)["choices"][0]["message"]["content"]
    assert content == "[[ ## intent ## ]]\nlost_or_stolen_card\n\n[[ ## completed ## ]]"


def test_usage_counts_prompt_and_completion(llm: httpx.Client) -> None:
    short, long = post(llm, body("stolen card")), post(llm, body("stolen card", system=SYSTEM * 40))
    for reply in (short, long):
        usage = reply["usage"]
        assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    chars = len(SYSTEM) * 39
    assert abs(long["usage"]["prompt_tokens"] - short["usage"]["prompt_tokens"] - chars / 4) <= 2


def test_hint_line_flips_a_wrong_answer(llm: httpx.Client) -> None:
    query = "where is the delivery? I have been waiting weeks for the card"
    assert label_of(post(llm, body(query))) == "card_delivery_estimate"
    hinted = SYSTEM + "\n- If the customer mentions waiting or weeks, the intent is card_arrival."
    assert label_of(post(llm, body(query, system=hinted))) == "card_arrival"


def test_relevant_demo_improves_the_answer(llm: httpx.Client) -> None:
    query = "shut down my account and transfer the money out"
    plain = body(query)
    assert label_of(post(llm, plain)) == "transfer_into_account"
    demo = call_example(1, user("shut down my account and move the money out"), "terminate_account")
    messages = [ChatMessage.model_validate(m) for m in plain["messages"]]
    with_demo = plain | {"messages": [m.as_openai() for m in inject_demos(messages, [demo])]}
    assert label_of(post(llm, with_demo)) == "terminate_account"


def post_all(client: httpx.Client, payloads: list[dict[str, Any]]) -> list[httpx.Response]:
    """POST every payload, 16 at a time (loopback round trips cost ~40 ms without TCP_NODELAY)."""
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda p: client.post("/v1/chat/completions", json=p), payloads))


def statuses(client: httpx.Client, n: int) -> list[int]:
    return [r.status_code for r in post_all(client, [body(f"query number {i}") for i in range(n)])]


def test_faults_at_configured_rates_and_reproducible() -> None:
    settings = SimLLMSettings(rate_429=0.2, rate_500=0.15, rate_malformed=0.1, retry_after_s=2, seed=7)
    with serve(settings) as client:
        replies = post_all(client, [body(f"query number {i}") for i in range(200)])
        retried = post_all(client, [body(f"query number {i}") for i in range(200)])
    codes = Counter(r.status_code for r in replies)
    malformed = sum(1 for r in replies if r.status_code == 200 and not _is_json(r.text))
    assert 25 <= codes[429] <= 55 and 15 <= codes[500] <= 45 and 8 <= malformed <= 35, (codes, malformed)
    assert all(r.headers["retry-after"] == "2" for r in replies if r.status_code == 429)
    assert all(r.headers["x-simulated-llm"] == "true" for r in replies)
    failed_twice = sum(
        1 for a, b in zip(replies, retried, strict=True) if a.status_code != 200 and b.status_code != 200
    )
    assert failed_twice < codes[429] + codes[500]  # a retry of the same request can succeed
    with serve(settings) as client:
        assert statuses(client, 200) == [r.status_code for r in replies]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except json.JSONDecodeError:
        return False
    return True


def test_hang_and_latency() -> None:
    settings = SimLLMSettings(rate_hang=1.0, hang_s=600)  # the server notices the client hanging up
    with BackgroundServer(create_app(settings)) as server, pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/chat/completions", json=body("stolen"), timeout=0.2)
    with BackgroundServer(create_app(SimLLMSettings(latency_ms=120))) as server:
        reply = httpx.post(server.url + "/v1/chat/completions", json=body("stolen"), timeout=5)
    assert reply.status_code == 200 and reply.elapsed.total_seconds() >= 0.12


def test_bad_requests_are_400(llm: httpx.Client) -> None:
    assert llm.post("/v1/chat/completions", content=b"{not json").status_code == 400
    assert llm.post("/v1/chat/completions", json={"messages": []}).status_code == 400


def example(i: int, query: str, label: str) -> FewShotExample:
    return call_example(i, user(query), label)


META_EXAMPLES = [
    example(1, "my parcel with the card never came by post", "card_arrival"),
    example(2, "the postman has not brought the card yet", "card_arrival"),
    example(3, "someone took my wallet on the bus", "lost_or_stolen_card"),
    example(4, "my wallet was taken, please freeze it", "lost_or_stolen_card"),
    example(5, "how many euros do I get for a pound", "exchange_rate"),
    example(6, "what is the euro to pound conversion", "exchange_rate"),
]


def propose(client: httpx.Client, **fields: Any) -> str:
    ctx = ProposalContext(
        task_description="Classify banking queries.",
        baseline_instruction=SYSTEM,
        demos=META_EXAMPLES,
        max_examples=10,
        **fields,
    )
    reply = post(client, {"messages": build_proposal_messages(ctx), "temperature": 1.0})
    return parse_instruction(reply["choices"][0]["message"]["content"])


def rules(text: str) -> dict[str, str]:
    return {
        line.rsplit(" is ", 1)[1].rstrip("."): line for line in text.splitlines() if line.startswith("- If")
    }


def test_meta_model_rules_are_grounded_and_vary(llm: httpx.Client) -> None:
    proposals = [
        propose(llm, proposal_index=i, tip=tip) for i, tip in enumerate(["none", "persona", "simple"])
    ]
    assert len(set(proposals)) == 3
    assert proposals[1].startswith("You are")
    grounded = " ".join(query_part(ex.input) for ex in META_EXAMPLES).lower()
    for text in proposals:
        found = rules(text)
        assert found and set(found) <= {"card_arrival", "lost_or_stolen_card", "exchange_rate"}
        for line in found.values():
            named = line.removeprefix("- If the query mentions ").split(", the intent is")[0]
            assert all(w in grounded for w in named.replace(" or ", ", ").split(", ")), line
    assert any("wallet" in line for text in proposals for line in rules(text).values())


def test_meta_model_keeps_best_and_drops_worst(llm: httpx.Client) -> None:
    best = SYSTEM + "\n- If the query mentions courier, the intent is card_arrival."
    worst = SYSTEM + "\n- If the query mentions bus, the intent is lost_or_stolen_card."
    history = [ScoredInstruction(text=best, score=0.8), ScoredInstruction(text=worst, score=0.2)]
    for index in range(3):
        found = rules(propose(llm, proposal_index=index, history=history))
        assert found["card_arrival"] == "- If the query mentions courier, the intent is card_arrival."
        assert "lost_or_stolen_card" not in found


def test_meta_model_data_summary(llm: httpx.Client) -> None:
    messages = build_summary_messages(META_EXAMPLES, "Classify banking queries.")
    summary = post(llm, {"messages": messages})["choices"][0]["message"]["content"]
    assert "6 examples" in summary and "3 distinct outputs" in summary
    assert 2 <= summary.count(". ") + 1 <= 4


# --- quality on the real Banking77 data -------------------------------------------------------------

BANKING = Path(
    os.environ.get("BANKING77_DIR", Path(__file__).resolve().parents[3] / "shared" / "datasets" / "banking77")
)
B77_SYSTEM = (
    "You are an expert banking assistant that classifies customer queries into banking intents. Given a "
    "customer message, respond with exactly one intent label from the provided list using the "
    "`banking77_classify` tool."
)
B77_TOOL = tool("banking77_classify", {"intent": {"type": "string"}}, ["intent"])


def b77_user(query: str, intents: str) -> str:
    return (
        f"Customer Query: {query}\n\nAvailable Intents:\n{intents}\n\n"
        "Classify this query into one of the above banking intents using the tool call."
    )


def b77_example(i: int, row: dict[str, str], intents: str) -> FewShotExample:
    return call_example(i, b77_user(row["text"], intents), row["category"], "banking77_classify")


def b77_accuracy(
    client: httpx.Client,
    rows: list[dict[str, str]],
    intents: str,
    system: str = B77_SYSTEM,
    demos: list[FewShotExample] | None = None,
) -> float:
    payloads = []
    for row in rows:
        base = [
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=b77_user(row["text"], intents)),
        ]
        messages = [m.as_openai() for m in inject_demos(base, demos or [])]
        extra = {"temperature": 0.0, "tools": [B77_TOOL], "tool_choice": "required"}
        payloads.append({"model": "openai/gpt-oss-20b", "messages": messages, **extra})
    replies = post_all(client, payloads)
    hits = [label_of(r.json()) == row["category"] for r, row in zip(replies, rows, strict=True)]
    return sum(hits) / len(hits)


def test_banking77_weak_but_teachable() -> None:
    labels = json.loads((BANKING / "categories.json").read_text())
    intents = "\n".join(f"{i + 1}. {label}" for i, label in enumerate(labels))
    with (BANKING / "train.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    order = list(range(len(rows)))
    random.Random(0).shuffle(order)  # rows are grouped by label: scatter them
    pick = lambda start, n: [rows[i] for i in order[start : start + n]]  # noqa: E731
    eval_a, eval_b, shown, pool = pick(0, 150), pick(150, 150), pick(300, 30), pick(330, 12)
    demos = [b77_example(i, row, intents) for i, row in enumerate(pool)]
    with serve(SimLLMSettings()) as client:
        ctx = ProposalContext(
            task_description="Classify a banking customer query into one of 77 intents.",
            baseline_instruction=B77_SYSTEM,
            max_examples=30,
            demos=[b77_example(i, row, intents) for i, row in enumerate(shown)],
        )
        reply = post(client, {"messages": build_proposal_messages(ctx), "temperature": 0.7})
        proposed = parse_instruction(reply["choices"][0]["message"]["content"])
        acc = {
            "baseline (rows A)": b77_accuracy(client, eval_a, intents),
            "baseline = 0 demos (rows B)": b77_accuracy(client, eval_b, intents),
            "proposed instruction (rows B)": b77_accuracy(client, eval_b, intents, proposed),
            "3 demos (rows B)": b77_accuracy(client, eval_b, intents, demos=demos[:3]),
            "12 demos (rows B)": b77_accuracy(client, eval_b, intents, demos=demos),
        }
    print(f"\nproposed instruction ({proposed.count(chr(10) + '- ')} rules):\n{proposed}")
    print("\n".join(f"{name:>32}: {value:.1%}" for name, value in acc.items()))
    assert 0.10 < acc["baseline (rows A)"] < 0.5 and 0.10 < acc["baseline = 0 demos (rows B)"] < 0.5
    assert acc["proposed instruction (rows B)"] > acc["baseline = 0 demos (rows B)"] + 0.03
    assert acc["3 demos (rows B)"] > acc["baseline = 0 demos (rows B)"] + 0.03
    assert acc["12 demos (rows B)"] < acc["3 demos (rows B)"] - 0.03


# --- DSPy's own prompts (ChatAdapter format): MIPROv2's proposer and data summary ------------------------

DSPY_PROPOSER_OBJECTIVE = (
    "Use the information below to learn about a task that we are trying to solve using calls to an LM, then "
    "generate a new instruction that will be used to prompt a Language Model to better solve the task."
)
DSPY_TASK_DEMOS = (
    "Query: my parcel with the card never came by post\nIntent: card_arrival\n\n"
    "Query: someone took my wallet on the bus\nIntent: lost_or_stolen_card\n\n"
    "Query: how many euros do I get for a pound\nIntent: exchange_rate\n\n"
)


def dspy_messages(inputs: dict[str, str], outputs: list[str], objective: str) -> list[dict[str, str]]:
    """Messages shaped like DSPy's ChatAdapter (dspy 3.x) for a signature of string fields."""
    listed = lambda names: "\n".join(f"{i}. `{n}` (str)" for i, n in enumerate(names, 1))  # noqa: E731
    layout = "\n\n".join(f"[[ ## {n} ## ]]\n{{{n}}}" for n in [*inputs, *outputs])
    system = (
        f"Your input fields are:\n{listed(list(inputs))}\nYour output fields are:\n{listed(outputs)}\n"
        "All interactions will be structured in the following way, with the appropriate values filled in.\n\n"
        f"{layout}\n\n[[ ## completed ## ]]\n"
        f"In adhering to this structure, your objective is: \n        {objective}"
    )
    fields = "\n\n".join(f"[[ ## {n} ## ]]\n{v}" for n, v in inputs.items())
    user_turn = (
        f"{fields}\n\nRespond with the corresponding output fields, starting with the field "
        f"`[[ ## {outputs[0]} ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user_turn}]


def dspy_field(reply: dict[str, Any], name: str) -> str:
    content = reply["choices"][0]["message"]["content"]
    assert content.startswith(f"[[ ## {name} ## ]]\n") and content.endswith("\n\n[[ ## completed ## ]]"), (
        content
    )
    return content.removeprefix(f"[[ ## {name} ## ]]\n").removesuffix("\n\n[[ ## completed ## ]]")


def dspy_proposal(client: httpx.Client, task_demos: str, tip: str | None = None) -> str:
    inputs = {
        "dataset_description": "Short banking questions.",
        "program_code": "Not provided",
        "program_description": "Not available",
        "module": "Predict(query) -> intent",
        "module_description": "Not provided",
        "task_demos": task_demos,
        "basic_instruction": "Classify the customer banking query into exactly one intent label.",
    }
    if tip is not None:
        inputs["tip"] = tip
    messages = dspy_messages(inputs, ["proposed_instruction"], DSPY_PROPOSER_OBJECTIVE)
    return dspy_field(
        post(client, {"model": "sim-meta", "messages": messages, "temperature": 1.0}), "proposed_instruction"
    )


def test_dspy_proposer_writes_a_grounded_instruction(llm: httpx.Client) -> None:
    basic = "Classify the customer banking query into exactly one intent label."
    plain = dspy_proposal(llm, DSPY_TASK_DEMOS)
    assert basic in plain.splitlines()[0]
    found = rules(plain)
    assert found and set(found) <= {"card_arrival", "lost_or_stolen_card", "exchange_rate"}
    shown = DSPY_TASK_DEMOS.lower()
    for line in found.values():
        named = line.removeprefix("- If the query mentions ").split(", the intent is")[0]
        assert all(w in shown for w in named.replace(" or ", ", ").split(", ")), line
    persona = dspy_proposal(
        llm,
        DSPY_TASK_DEMOS,
        tip='Include a persona that is relevant to the task in the instruction (ie. "You are a ...")',
    )
    assert persona.startswith("You are") and persona != plain
    assert dspy_proposal(llm, DSPY_TASK_DEMOS) == plain  # deterministic
    bare = dspy_proposal(llm, "No task demos provided.")
    assert basic in bare and not rules(bare)


def test_dspy_data_summary_and_descriptions(llm: httpx.Client) -> None:
    examples = (
        "[Example({'query': 'my card never came', 'intent': 'card_arrival'}) (input_keys={'query'}), "
        "Example({'query': \"I can't find my wallet\", 'intent': 'lost_or_stolen_card'}) "
        "(input_keys={'query'}), "
        "Example({'query': 'euro rate today?', 'intent': 'exchange_rate'}) (input_keys={'query'})]"
    )
    observed = dspy_messages(
        {"examples": examples}, ["observations"], "Given several examples from a dataset ..."
    )
    observations = dspy_field(post(llm, {"messages": observed}), "observations")
    assert "3 examples" in observations and "3 distinct outputs" in observations
    asked = dspy_messages({"observations": observations}, ["summary"], "Given a series of observations ...")
    summary = dspy_field(post(llm, {"messages": asked}), "summary")
    assert summary and 1 <= summary.count(". ") + 1 <= 4
    program = {"program_code": "class P: ...", "program_example": DSPY_TASK_DEMOS}
    described = dspy_messages(program, ["program_description"], "Please describe what type of task ...")
    assert "classification" in dspy_field(post(llm, {"messages": described}), "program_description")
    module = {**program, "program_description": "It classifies.", "module": "Predict(query) -> intent"}
    described = dspy_messages(module, ["module_description"], "Please describe the purpose of one module ...")
    assert "Predict(query) -> intent" in dspy_field(post(llm, {"messages": described}), "module_description")


def test_dspy_task_with_a_meta_sounding_output_field_is_classified(llm: httpx.Client) -> None:
    """A user's DSPy program whose output is named `summary` is a task, not the proposer's summarizer."""
    messages = dspy_messages(
        {"text": "my card got stolen"}, ["summary"], f"Answer one of: {', '.join(LABELS)}."
    )
    messages[0]["content"] = messages[0]["content"].replace(
        "`summary` (str)", f"`summary` (Literal[{', '.join(repr(x) for x in LABELS)}])"
    )
    assert dspy_field(post(llm, {"messages": messages}), "summary") == "lost_or_stolen_card"
