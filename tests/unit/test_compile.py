"""Unit tests of the transform compiler (mipro/compile.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mipro.compile import (
    TransformApplicationError,
    apply_instruction,
    compile_messages,
    compile_stage_messages,
    inject_demos,
    locate_stage,
    render_ready_messages,
)
from mipro.types import ChatMessage, CompiledCandidate, FewShotExample, StagePrompt, StageSpec

SYSTEM = (
    "You are an expert banking assistant that classifies customer queries into banking intents. "
    "Given a customer message, respond with exactly one intent label from the provided list using "
    "the `banking77_classify` tool."
)
USER = (
    "Customer Query: {query}\n\nAvailable Intents:\n{available_intents}\n\n"
    "Classify this query into one of the above banking intents using the tool call."
)
NEW = "Read the customer query carefully and call `banking77_classify` with the single best intent."

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
instructions = st.text(alphabet=st.characters(whitelist_categories=("L", "N", "Zs", "P")), min_size=1).filter(
    lambda s: s.strip() and "banking" not in s.lower()
)


def msgs(system: str = SYSTEM, user: str = USER) -> list[ChatMessage]:
    return [ChatMessage(role="system", content=system), ChatMessage(role="user", content=user)]


def spec(**kw: object) -> StageSpec:
    return StageSpec(**{"baseline_instruction": SYSTEM, **kw})


def cand(
    instruction: str, demos: list[FewShotExample] | None = None, stage_id: str = "default"
) -> CompiledCandidate:
    return CompiledCandidate(
        stages=[StagePrompt(stage_id=stage_id, instruction=instruction, demos=demos or [])]
    )


def demo(i: int, answer: ChatMessage | None = None) -> FewShotExample:
    answer = answer or ChatMessage(role="assistant", content=f"label_{i}")
    return FewShotExample(seed=i, stage_id="default", input=f"query {i}", answer=answer, score=1.0)


def tool_answer(*labels: str, with_ids: bool = False) -> ChatMessage:
    calls = [
        {"type": "function", "function": {"name": "banking77_classify", "arguments": {"intent": label}}}
        | ({"id": f"call_{label}"} if with_ids else {})
        for label in labels
    ]
    return ChatMessage(role="assistant", content=None, tool_calls=calls)


def dumps(messages: list[ChatMessage]) -> list[dict[str, object]]:
    return [m.model_dump() for m in messages]


def test_replace_exact() -> None:
    out = apply_instruction(msgs(system=f"  {SYSTEM}\n"), spec(match="exact"), NEW)
    assert out[0].content == f"  {NEW}\n"
    assert out[1].content == USER


def test_exact_does_not_match_inside_longer_text() -> None:
    with pytest.raises(TransformApplicationError):
        apply_instruction(msgs(system=f"Preamble. {SYSTEM}"), spec(match="exact"), NEW)


@given(prefix=texts, suffix=texts)
def test_replace_substring_keeps_surroundings(prefix: str, suffix: str) -> None:
    out = apply_instruction(msgs(system=prefix + SYSTEM + suffix), spec(), NEW)
    assert out[0].content == prefix + NEW + suffix


@given(prefix=texts, suffix=texts)
def test_case_insensitive_keeps_rest_of_text(prefix: str, suffix: str) -> None:
    system = prefix + SYSTEM.upper() + suffix
    out = apply_instruction(msgs(system=system), spec(case_sensitive=False), NEW)
    assert out[0].content == prefix + NEW + suffix
    with pytest.raises(TransformApplicationError):
        apply_instruction(msgs(system=system), spec(), NEW)


def test_case_insensitive_follow_keeps_original_casing() -> None:
    out = apply_instruction(
        msgs(system="Intro. " + SYSTEM.upper()), spec(case_sensitive=False, mode="follow"), NEW
    )
    assert out[0].content == "Intro. " + SYSTEM.upper() + "\n\n" + NEW


@given(suffix=texts)
def test_follow(suffix: str) -> None:
    out = apply_instruction(msgs(system=SYSTEM + suffix), spec(mode="follow"), NEW)
    assert out[0].content == SYSTEM + "\n\n" + NEW + suffix


def test_instruction_in_user_message_keeps_placeholders() -> None:
    user_spec = StageSpec(
        baseline_instruction="Classify this query into one of the above banking intents", role="user"
    )
    out = apply_instruction(msgs(), user_spec, "Pick the single best intent")
    assert out[0].content == SYSTEM
    assert out[1].content == USER.replace(
        "Classify this query into one of the above banking intents", "Pick the single best intent"
    )
    assert "{query}" in out[1].content and "{available_intents}" in out[1].content


def test_not_found_names_stage_role_and_text() -> None:
    bad = StageSpec(stage_id="classify", baseline_instruction="You are a pirate.", role="system")
    with pytest.raises(TransformApplicationError, match="classify") as info:
        apply_instruction(msgs(), bad, NEW)
    assert "'system'" in str(info.value) and "You are a pirate." in str(info.value)
    with pytest.raises(TransformApplicationError, match="classify"):
        compile_messages(msgs(), [bad], cand(NEW, stage_id="classify"))


def test_role_must_match() -> None:
    assert locate_stage(msgs(), [spec(role="user")]) is None
    assert locate_stage(msgs(), [spec()]) == spec()


@given(n=st.integers(min_value=1, max_value=5))
def test_demos_injected_before_final_user_in_order(n: int) -> None:
    history = [
        *msgs(user="earlier"),
        ChatMessage(role="assistant", content="hi"),
        ChatMessage(role="user", content=USER),
    ]
    out = inject_demos(history, [demo(i) for i in range(n)])
    assert dumps(out[:3]) == dumps(history[:3]) and dumps(out[-1:]) == dumps(history[-1:])
    injected = out[3:-1]
    assert [m.role for m in injected] == ["user", "assistant"] * n
    assert [m.content for m in injected] == [x for i in range(n) for x in (f"query {i}", f"label_{i}")]


def test_no_demos_is_unchanged_copy_and_no_user_raises() -> None:
    original = msgs()
    out = inject_demos(original, [])
    assert dumps(out) == dumps(original) and out[0] is not original[0]
    with pytest.raises(TransformApplicationError):
        inject_demos([ChatMessage(role="system", content=SYSTEM)], [demo(0)])


@given(n_calls=st.integers(min_value=1, max_value=3), with_ids=st.booleans())
def test_tool_call_demos_are_valid_openai_sequences(n_calls: int, with_ids: bool) -> None:
    labels = [f"intent_{j}" for j in range(n_calls)]
    answer = tool_answer(*labels, with_ids=with_ids)
    out = inject_demos(msgs(), [demo(0), demo(1, answer)])
    turns = out[4:-1]
    assistant, results = turns[0], turns[1:]
    assert (
        assistant.role == "assistant" and assistant.content is None and "content" not in assistant.as_openai()
    )
    ids = [c["id"] for c in assistant.tool_calls or []]
    expected = [f"call_{label}" for label in labels] if with_ids else [f"demo_1_{j}" for j in range(n_calls)]
    assert ids == expected
    assert [(m.role, m.tool_call_id) for m in results] == [("tool", i) for i in ids]
    assert all(m.content for m in results)
    assert all(isinstance(c["function"]["arguments"], str) for c in assistant.tool_calls or [])
    assert [("id" in c) for c in answer.tool_calls or []] == [with_ids] * n_calls  # demo not mutated


@pytest.mark.parametrize("mode", ["replace", "follow"])
@pytest.mark.parametrize("match", ["exact", "substring"])
def test_baseline_candidate_is_identity(mode: str, match: str) -> None:
    stage = spec(mode=mode, match=match)
    if mode == "replace":
        assert dumps(compile_messages(msgs(), [stage], cand(SYSTEM))) == dumps(msgs())
    assert dumps(apply_instruction(msgs(), spec(match=match), SYSTEM)) == dumps(msgs())


def test_baseline_candidate_identity_case_insensitive() -> None:
    original = msgs(system=SYSTEM.lower())
    out = compile_messages(original, [spec(case_sensitive=False)], cand(SYSTEM))
    assert dumps(out) == dumps(original)


@given(
    instruction=instructions,
    mode=st.sampled_from(["replace", "follow"]),
    match=st.sampled_from(["exact", "substring"]),
    extend=st.booleans(),
    n_demos=st.integers(min_value=0, max_value=2),
)
def test_compile_is_idempotent(instruction: str, mode: str, match: str, extend: bool, n_demos: int) -> None:
    instruction = (
        SYSTEM + " " + instruction if extend else instruction
    )  # the candidate may contain the baseline
    stages = [spec(mode=mode, match=match)]
    candidate = cand(instruction, [demo(i, tool_answer("x") if i else None) for i in range(n_demos)])
    once = compile_messages(msgs(), stages, candidate)
    assert dumps(compile_messages(once, stages, candidate)) == dumps(once)
    assert len(once) == 2 + sum(2 if i == 0 else 3 for i in range(n_demos))


def test_candidate_rendered_by_task_app_passes_through_with_demos() -> None:
    rendered = msgs(system=NEW)
    out = compile_messages(rendered, [spec()], cand(NEW, [demo(0)]))
    assert out[0].content == NEW and [m.content for m in out[1:]] == ["query 0", "label_0", USER]
    assert dumps(compile_messages(out, [spec()], cand(NEW, [demo(0)]))) == dumps(out)


def test_no_baseline_and_no_candidate_instruction_raises() -> None:
    with pytest.raises(TransformApplicationError, match="no stage matched"):
        compile_messages(msgs(system="Something else entirely."), [spec()], cand(NEW))


def test_missing_stage_prompt_raises() -> None:
    with pytest.raises(TransformApplicationError, match="no prompt"):
        compile_messages(msgs(), [spec(stage_id="a")], cand(NEW, stage_id="b"))


@given(instruction=instructions, demos_n=st.integers(min_value=0, max_value=2))
def test_input_never_mutated(instruction: str, demos_n: int) -> None:
    original = msgs()
    snapshot = dumps(original)
    candidate = cand(instruction, [demo(i, tool_answer("x")) for i in range(demos_n)])
    snapshot_candidate = candidate.model_dump()
    out = compile_messages(original, [spec(mode="follow")], candidate)
    out[0].content = "changed"
    assert dumps(original) == snapshot and candidate.model_dump() == snapshot_candidate
    assert all(a is not b for a, b in zip(out, original, strict=False))


def test_multi_stage_each_located() -> None:
    classify = StageSpec(stage_id="classify", baseline_instruction=SYSTEM)
    other = "You are a careful reviewer. Check the proposed banking intent and fix it if wrong."
    review = StageSpec(stage_id="review", baseline_instruction=other)
    candidate = CompiledCandidate(
        stages=[
            StagePrompt(stage_id="classify", instruction="NEW CLASSIFY"),
            StagePrompt(stage_id="review", instruction="NEW REVIEW", demos=[demo(7)]),
        ]
    )
    assert locate_stage(msgs(), [classify, review]) == classify
    assert locate_stage(msgs(system=other), [classify, review]) == review
    first = compile_messages(msgs(), [classify, review], candidate)
    assert first[0].content == "NEW CLASSIFY" and len(first) == 2
    second = compile_messages(msgs(system=other), [classify, review], candidate)
    assert second[0].content == "NEW REVIEW" and [m.content for m in second[1:3]] == ["query 7", "label_7"]


def test_render_ready_messages_keeps_placeholders() -> None:
    out = render_ready_messages(msgs(), [spec()], cand(NEW, [demo(0)]))
    assert out[0].content == NEW and out[-1].content == USER
    assert "{query}" in (out[-1].content or "")


def test_a_choice_compiles_to_its_instruction_and_demo_set() -> None:
    from mipro.compile import compile_choice
    from mipro.types import CandidateChoice, ChatMessage, FewShotExample, StageSpec

    stage = StageSpec(stage_id="main", baseline_instruction="Classify.")
    demos = [
        FewShotExample(
            seed=s, stage_id="main", input=f"q{s}", answer=ChatMessage(role="assistant", content="a"), score=1
        )
        for s in range(3)
    ]
    choice = CandidateChoice(instruction=[1], demo_set=[1])
    out = compile_choice([stage], [["Classify.", "Label it."]], [[[], [2, 0]]], [demos], choice)
    assert out.stages[0].instruction == "Label it."
    assert [d.seed for d in out.stages[0].demos] == [2, 0]
    before_proposal = compile_choice([stage], [], [], [], CandidateChoice(instruction=[0], demo_set=[0]))
    assert before_proposal.stages[0].instruction == "Classify." and before_proposal.stages[0].demos == []


def test_a_known_stage_gets_its_own_prompt_even_when_another_stage_shares_the_baseline() -> None:
    """With the stage named (e.g. by the call's URL), stages with the same baseline are told apart."""
    first, second = spec(stage_id="first"), spec(stage_id="second")
    candidate = CompiledCandidate(
        stages=[
            StagePrompt(stage_id="first", instruction="FIRST"),
            StagePrompt(stage_id="second", instruction="SECOND", demos=[demo(3)]),
        ]
    )
    assert compile_messages(msgs(), [first, second], candidate)[0].content == "FIRST", (
        "by baseline: the first"
    )
    out = compile_stage_messages(msgs(), second, candidate)
    assert out[0].content == "SECOND" and [m.content for m in out[1:3]] == ["query 3", "label_3"]
    assert dumps(compile_stage_messages(out, second, candidate)) == dumps(out), "idempotent"


def test_a_known_stage_passes_a_candidate_the_task_app_rendered_and_refuses_neither() -> None:
    stage = spec(stage_id="s")
    rendered = msgs(system=NEW)
    out = compile_stage_messages(rendered, stage, cand(NEW, [demo(0)], stage_id="s"))
    assert out[0].content == NEW and [m.content for m in out[1:]] == ["query 0", "label_0", USER]
    with pytest.raises(TransformApplicationError, match="stage 's'"):
        compile_stage_messages(msgs(system="Something else."), stage, cand(NEW, stage_id="s"))
    with pytest.raises(TransformApplicationError, match="no prompt"):
        compile_stage_messages(msgs(), stage, cand(NEW, stage_id="other"))
