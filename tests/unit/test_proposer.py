"""The proposer's prompts, reply parsing and deduplication (pure functions)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from mipro.proposer import (
    PROPOSAL_HEADER,
    SUMMARY_HEADER,
    TIPS,
    ProposalContext,
    ProposalParseError,
    ScoredInstruction,
    answer_text,
    build_proposal_messages,
    build_summary_messages,
    examples_shown,
    is_duplicate,
    normalize,
    parse_instruction,
    query_part,
)
from mipro.types import ChatMessage, FewShotExample

BASELINE = "You are an expert banking assistant. Classify the query with the `banking77_classify` tool."
INTENTS = "\n".join(f"{i}. label_{i}" for i in range(1, 78))


def example(i: int, query: str, intent: str, tool: bool = True) -> FewShotExample:
    text = f"Customer Query: {query}\n\nAvailable Intents:\n{INTENTS}\n\nClassify this query."
    if tool:
        call = {
            "id": f"c{i}",
            "type": "function",
            "function": {"name": "classify", "arguments": f'{{"intent": "{intent}"}}'},
        }
        answer = ChatMessage(role="assistant", tool_calls=[call])
    else:
        answer = ChatMessage(role="assistant", content=intent)
    return FewShotExample(seed=i, stage_id="default", input=text, answer=answer, score=1.0)


EXAMPLES = [example(i, f"where is my card number {i}?", "card_arrival", tool=i % 2 == 0) for i in range(8)]


def test_six_dspy_tips() -> None:
    assert set(TIPS) == {"none", "creative", "simple", "description", "high_stakes", "persona"}
    assert TIPS["none"] == "" and "You are a" in TIPS["persona"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Proposed Instruction: Classify the query into one intent.", "Classify the query into one intent."),
        ("**New Instruction:** Classify the query carefully.", "Classify the query carefully."),
        ("```\nClassify the query, then answer.\n```", "Classify the query, then answer."),
        ("```text\nClassify the query, then answer.\n```", "Classify the query, then answer."),
        ('"Classify the query into one label."', "Classify the query into one label."),
        ("\u201cClassify the query into one label.\u201d", "Classify the query into one label."),
        (
            "[[ ## proposed_instruction ## ]]\nClassify each query.\n\n[[ ## completed ## ]]",
            "Classify each query.",
        ),
        ('Here is the new instruction: "Classify it well, ok?"', "Classify it well, ok?"),
        ("Prompt-engineering is not needed here.", "Prompt-engineering is not needed here."),
    ],
)
def test_parse_instruction_strips_wrappers(reply: str, expected: str) -> None:
    assert parse_instruction(reply) == expected


def test_parse_instruction_keeps_rule_lines() -> None:
    text = "Classify the query.\n\nRules:\n- If the query mentions post, the intent is card_arrival."
    assert parse_instruction(f"Proposed Instruction:\n{text}") == text


@pytest.mark.parametrize(
    "reply", ["", "   ", "ok", "Proposed Instruction:", "```\n\n```", '""', "[[ ## a ## ]]"]
)
def test_parse_instruction_rejects_empty_or_short(reply: str) -> None:
    with pytest.raises(ProposalParseError):
        parse_instruction(reply)


def test_normalize_and_duplicates() -> None:
    assert normalize("  Classify, the QUERY!\n\n- now ") == "classify the query now"
    assert is_duplicate("Classify the query.", "classify   the query")
    long = " ".join(f"word{i}" for i in range(30))
    assert is_duplicate(long, long + " extra")
    assert not is_duplicate(long, long + " extra", threshold=1.0)
    assert not is_duplicate("Classify the query.", "Summarize the document in one line.")
    assert not is_duplicate("...", "Classify the query.")


@given(st.text(max_size=80), st.text(max_size=80))
def test_is_duplicate_is_symmetric_and_reflexive(a: str, b: str) -> None:
    assert is_duplicate(a, a)
    assert is_duplicate(a, b) == is_duplicate(b, a)


def test_query_part() -> None:
    assert query_part("Customer Query: my card\n\nAvailable Intents:\n1. x") == "my card"
    assert query_part("Question: why?\nstill the question\n\nrest") == "why?\nstill the question"
    assert query_part("[[ ## text ## ]]\nhello there\n\n[[ ## label ## ]]\n") == "hello there"
    assert query_part("  just a message  ") == "just a message"


def test_answer_text() -> None:
    assert answer_text(EXAMPLES[0].answer) == '{"intent": "card_arrival"}'
    assert answer_text(EXAMPLES[1].answer) == "card_arrival"


def test_proposal_messages() -> None:
    ctx = ProposalContext(
        task_description="Classify banking queries into 77 intents.",
        baseline_instruction=BASELINE,
        demos=EXAMPLES,
        data_summary="Short questions about cards.",
        tip="persona",
        proposal_index=3,
    )
    system, user = build_proposal_messages(ctx)
    assert system["role"] == "system" and system["content"].startswith(PROPOSAL_HEADER)
    assert "new instruction only" in system["content"]
    content = user["content"]
    assert user["role"] == "user" and BASELINE in content and "77 intents" in content
    assert "<data_summary>\nShort questions about cards.\n</data_summary>" in content
    assert TIPS["persona"] in content and '<proposal index="3">' in content
    assert content.count("<example index=") == 5  # max_examples defaults to 5
    assert 'Input: where is my card number 0?\nOutput: {"intent": "card_arrival"}' in content
    assert "Output: card_arrival" in content and "label_77" not in content  # query part only
    assert "<history>" not in content and content.endswith("Proposed instruction:")


def test_proposal_messages_history_and_limits() -> None:
    history = [ScoredInstruction(text=f"Instruction number {i}.", score=i / 10) for i in range(10)]
    ctx = ProposalContext(task_description="", baseline_instruction=BASELINE, history=history, max_examples=0)
    content = build_proposal_messages(ctx)[1]["content"]
    assert "<data_summary>" not in content and "No task examples provided." in content
    shown = [i for i in range(10) if f"Instruction number {i}." in content]
    assert shown == [0, 1, 2, 7, 8, 9]  # the worst and best three, best last
    assert '<instruction score="0.9000">\nInstruction number 9.\n</instruction>' in content
    assert "No tip" in content


def test_unknown_tip_is_rejected() -> None:
    with pytest.raises(ValidationError):
        ProposalContext(task_description="t", baseline_instruction="b", tip="funny")


def test_context_round_trips_as_json() -> None:
    ctx = ProposalContext(task_description="t", baseline_instruction="b", demos=EXAMPLES[:2], tip="simple")
    assert ProposalContext.model_validate(json.loads(ctx.model_dump_json())) == ctx


def test_summary_messages() -> None:
    system, user = build_summary_messages(EXAMPLES, "Classify banking queries.", max_examples=3)
    assert system["content"].startswith(SUMMARY_HEADER) and "2-3 sentence" in system["content"]
    assert "Classify banking queries." in user["content"] and user["content"].count("<example index=") == 3


def test_consecutive_proposals_are_grounded_in_different_examples() -> None:
    def shown(index: int) -> list[str]:
        ctx = ProposalContext(
            task_description="", baseline_instruction=BASELINE, demos=EXAMPLES, proposal_index=index
        )
        return [e.input for e in examples_shown(ctx)]

    assert shown(0) != shown(1)
    assert len(set(shown(0))) == 5, "a window never repeats an example"
    seen = {query for index in range(2) for query in shown(index)}
    assert seen == {e.input for e in EXAMPLES}, "two proposals of 5 cover a pool of 8"
    few = ProposalContext(task_description="", baseline_instruction=BASELINE, demos=EXAMPLES[:2])
    assert len(examples_shown(few)) == 2
