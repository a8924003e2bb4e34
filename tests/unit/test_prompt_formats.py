"""The simulated LLM and the proposer over prompt formats other than banking77's (issue 15).

For each format of `tests.unit.prompt_formats` (the CLINC150 one among them): the simulated LLM reads the
label set and the query, answers in the format asked, learns from demos answered in that format; the
proposer shows the meta-model the query (not the label list) and the simulated meta-model's rules are
grounded in the queries. All over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mipro.proposer import ProposalContext, build_proposal_messages, parse_instruction, query_part
from mipro.serving import BackgroundServer
from mipro.simllm import SimLLMSettings, create_app
from mipro.simllm.app import completion
from mipro.simllm.prompt import read_prompt
from mipro.types import ChatMessage, FewShotExample
from tests.unit.prompt_formats import FORMATS, LABELS, SYSTEM, PromptFormat

# Queries whose words name one label each (the weak model's zero-shot evidence is label-name overlap).
NAMED = {
    "my shipping is late again": "shipping",
    "how do I redeem gift cards here": "gift_cards",
    "please translate this sentence": "translate",
}
# Queries that name no label: only a demo (or a rule) can tell the model what they mean.
UNNAMED = "I was charged twice this month"
IDS = [f.name for f in FORMATS]
RULE = re.compile(r"^- If the query mentions (?P<words>.+), the \w+ is (?P<label>\w+)\.$")


@pytest.fixture(scope="module")
def llm() -> Iterator[httpx.Client]:
    settings = SimLLMSettings(zero_shot_confusion=0.0)  # no zero-shot confusion: the scores alone decide
    with BackgroundServer(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def ask(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]


def same_answer(got: dict[str, Any], expected: dict[str, Any]) -> bool:
    """Whether two assistant turns answer the same way (tool call name and arguments, JSON, or text)."""
    if expected.get("tool_calls"):
        want = expected["tool_calls"][0]["function"]
        call = (got.get("tool_calls") or [{"function": {"name": None, "arguments": "null"}}])[0]["function"]
        return call["name"] == want["name"] and json.loads(call["arguments"]) == json.loads(want["arguments"])
    content, wanted = got.get("content") or "", expected["content"]
    if wanted.startswith("{"):
        return json.loads(content) == json.loads(wanted)
    return content == wanted


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_reads_the_label_set_and_the_query(fmt: PromptFormat) -> None:
    body = fmt.body("my shipping is late again")
    view = read_prompt(body["messages"], body.get("tools"), body.get("response_format"))
    assert list(view.labels) == LABELS
    assert view.query == "my shipping is late again"


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_answers_the_right_label_in_the_format_asked(llm: httpx.Client, fmt: PromptFormat) -> None:
    for query, label in NAMED.items():
        got = ask(llm, fmt.body(query))
        assert same_answer(got, fmt.answer(label)), (query, got)


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_demos_answered_in_the_format_teach_it(llm: httpx.Client, fmt: PromptFormat) -> None:
    for label in ("billing", "returns"):
        body = fmt.body(UNNAMED, demos=[("charged twice on my card this month", label)])
        view = read_prompt(body["messages"], body.get("tools"), body.get("response_format"))
        assert [d.label for d in view.demos] == [label]
        assert view.demos[0].query == "charged twice on my card this month"
        assert same_answer(ask(llm, body), fmt.answer(label)), label


def test_clinc150_rule_in_the_instruction_teaches_it(llm: httpx.Client) -> None:
    clinc = FORMATS[0]
    plain = clinc.body(UNNAMED)
    for label in ("billing", "returns"):
        ruled = json.loads(json.dumps(plain))
        ruled["messages"][0]["content"] += f"\n- If the request mentions charged, the intent is {label}."
        assert ask(llm, ruled)["content"] == f"Intent: {label}"


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_the_proposer_shows_the_query_whatever_its_prefix(fmt: PromptFormat) -> None:
    demos = [example(fmt, i, query, label) for i, (query, label) in enumerate(NAMED.items())]
    assert [query_part(d.input) for d in demos] == list(NAMED)
    ctx = ProposalContext(task_description="Route messages.", baseline_instruction=fmt.system, demos=demos)
    shown = build_proposal_messages(ctx)[1]["content"].splitlines()
    inputs = [line.removeprefix("Input: ") for line in shown if line.startswith("Input: ")]
    assert inputs == list(NAMED), "each example shows its query, not the label list or the answer format"


@pytest.mark.parametrize("fmt", FORMATS, ids=IDS)
def test_simulated_meta_model_rules_are_grounded_in_the_queries(llm: httpx.Client, fmt: PromptFormat) -> None:
    shown = {
        "the parcel never came by courier": "shipping",
        "courier lost the parcel": "shipping",
        "I want my money back for this jacket": "returns",
        "send the jacket back for money": "returns",
    }
    demos = [example(fmt, i, query, label) for i, (query, label) in enumerate(shown.items())]
    rules: dict[str, str] = {}
    for index in range(4):
        ctx = ProposalContext(
            task_description="Route messages.",
            baseline_instruction=fmt.system,
            demos=demos,
            proposal_index=index,
        )
        reply = ask(llm, {"messages": build_proposal_messages(ctx), "temperature": 1.0})
        for line in parse_instruction(reply["content"]).splitlines():
            if (rule := RULE.match(line)) is not None:
                rules[rule.group("label")] = rule.group("words")
    assert set(rules) == {"shipping", "returns"}, rules
    said = " ".join(shown).lower().split()
    for label, named in rules.items():
        assert all(w in said for w in named.replace(" or ", ", ").split(", ")), (label, named)


def example(fmt: PromptFormat, i: int, query: str, label: str) -> FewShotExample:
    """A bootstrapped demo as the interceptor records it: the final user turn and the model's answer."""
    answer = ChatMessage.model_validate(fmt.answer(label))
    return FewShotExample(seed=i, stage_id="default", input=fmt.user(query, LABELS), answer=answer, score=1.0)


def test_without_demos_the_proposer_grounds_in_the_task_and_the_failed_answers(llm: httpx.Client) -> None:
    """No rollout scored well (the app wants `Intent: <label>`, its prompt does not say so): proposals are
    grounded in the task description and the failed answers, and they fix the answer format."""
    listed = f"Intents: {', '.join(LABELS)}"
    failed = [
        FewShotExample(
            seed=i,
            stage_id="default",
            input=f"Request: {query}\n\n{listed}",
            answer=ChatMessage(role="assistant", content=label),
            score=0.0,
        )
        for i, (query, label) in enumerate(NAMED.items())
    ]
    task = "Route support requests. Answer with one line `Intent: <label>`; any other format scores 0."
    plain = build_proposal_messages(ProposalContext(task_description=task, baseline_instruction=SYSTEM))
    assert "failed_examples" not in plain[0]["content"] + plain[1]["content"]
    proposals = []
    for index in range(3):
        ctx = ProposalContext(
            task_description=task, baseline_instruction=SYSTEM, failed_examples=failed, proposal_index=index
        )
        messages = build_proposal_messages(ctx)
        system, user = messages[0]["content"], messages[1]["content"]
        assert "<failed_examples>" in system and "</failed_examples>" in user
        assert user.count('score="0.00"') == len(failed)
        proposals.append(parse_instruction(ask(llm, {"messages": messages, "temperature": 1.0})["content"]))
    assert len(set(proposals)) > 1, "proposals differ"
    for proposed in proposals:
        assert "`Intent: <label>`" in proposed and '"shipping"' in proposed, proposed
    query = {"role": "user", "content": f"Request: my shipping is late again\n\n{listed}"}
    baseline = ask(llm, {"messages": [{"role": "system", "content": SYSTEM}, query]})
    fixed = ask(llm, {"messages": [{"role": "system", "content": proposals[0]}, query]})
    assert (baseline["content"], fixed["content"]) == ("shipping", "Intent: shipping")


FRAGMENTS = [
    "one of:",
    "one of",
    " | ",
    ", ",
    " or ",
    "Labels:",
    "Intents:\n",
    "\n1. ",
    "\n- ",
    "Request: ",
    "Query: ",
    "Intent: <label>",
    "Label: ...",
    '{"label": "<x>"}',
    '["a", "b"]',
    '["a\\q", "b"]',
    "[",
    "{",
    "}",
    "\n\n",
    "JSON",
    "Category:",
    "[[ ## text ## ]]\n",
    "Literal['a', 'b']",
    "billing",
    "shipping",
    "\\",
    "`",
    "'",
    '"',
]
texts = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=12), max_size=25).map("".join)


@settings(max_examples=300, deadline=None)
@given(system=texts, user=texts, answer=texts, demo=texts)
def test_any_prompt_text_gets_an_answer_never_an_error(
    system: str, user: str, answer: str, demo: str
) -> None:
    """Whatever the shapes mix, the simulated LLM reads the prompt and answers in some format."""
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": demo},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": user},
    ]
    reply = completion({"messages": messages}, SimLLMSettings())
    message = reply["choices"][0]["message"]
    assert message["role"] == "assistant" and isinstance(message["content"], str) and message["content"]
    assert isinstance(query_part(user), str)
