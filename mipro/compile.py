"""The transform compiler: turn the messages a task app sent into the candidate's messages.

The interceptor calls `compile_messages` on every LLM call it forwards upstream. Everything here is
pure: inputs are never mutated and the same inputs always give the same output.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from mipro.types import (
    CandidateChoice,
    ChatMessage,
    CompiledCandidate,
    FewShotExample,
    StagePrompt,
    StageSpec,
)

FOLLOW_SEPARATOR = "\n\n"
TOOL_RESULT = "ok"


class TransformApplicationError(Exception):
    """The baseline instruction could not be located in the messages.

    The message names the stage, the role and the text looked for.
    """


def _pattern(text: str, case_sensitive: bool) -> re.Pattern[str]:
    return re.compile(re.escape(text), 0 if case_sensitive else re.IGNORECASE)


def baseline_span(content: str, spec: StageSpec) -> tuple[int, int] | None:
    """Where the stage's baseline sits in `content` (start, end), per the stage's match/case rules."""
    baseline = spec.baseline_instruction.strip()
    if not baseline:
        return None
    pattern = _pattern(baseline, spec.case_sensitive)
    if spec.match == "substring":
        found = pattern.search(content)
        return found.span() if found else None
    start = len(content) - len(content.lstrip())
    core = content.strip()
    return (start, start + len(core)) if pattern.fullmatch(core) else None


def _locate(messages: list[ChatMessage], spec: StageSpec) -> tuple[int, int, int] | None:
    """(message index, start, end) of the first occurrence of the baseline in a message of its role."""
    for index, message in enumerate(messages):
        if message.role == spec.role and message.content is not None:
            span = baseline_span(message.content, spec)
            if span is not None:
                return index, *span
    return None


def _copy(messages: list[ChatMessage]) -> list[ChatMessage]:
    return [message.model_copy(deep=True) for message in messages]


def locate_stage(messages: list[ChatMessage], stages: list[StageSpec]) -> StageSpec | None:
    """The first stage whose baseline is found (per its match/case rules) in a message of its role."""
    return next((spec for spec in stages if _locate(messages, spec) is not None), None)


def stage_of(
    messages: list[ChatMessage], stages: list[StageSpec], candidate: CompiledCandidate
) -> StageSpec | None:
    """The stage of a call: the first whose baseline its messages hold, else the first whose candidate
    instruction they hold (a task app that rendered the candidate itself), else None."""
    spec = locate_stage(messages, stages)
    if spec is not None:
        return spec
    prompts = {p.stage_id: p.instruction for p in candidate.stages}
    carried = (s for s in stages if s.stage_id in prompts and _carries(messages, s, prompts[s.stage_id]))
    return next(carried, None)


def apply_instruction(messages: list[ChatMessage], spec: StageSpec, instruction: str) -> list[ChatMessage]:
    """Replace the located baseline with `instruction`, or put it right after (mode="follow")."""
    hit = _locate(messages, spec)
    if hit is None:
        raise TransformApplicationError(
            f"stage {spec.stage_id!r}: baseline instruction not found in any {spec.role!r} message "
            f"(match={spec.match}, case_sensitive={spec.case_sensitive}); "
            f"looked for {spec.baseline_instruction.strip()!r}"
        )
    index, start, end = hit
    out = _copy(messages)
    content = out[index].content or ""
    found, instruction = content[start:end], instruction.strip()
    if spec.mode == "follow":
        new = found + FOLLOW_SEPARATOR + instruction
    else:
        new = found if instruction == spec.baseline_instruction.strip() else instruction
    out[index] = out[index].model_copy(update={"content": content[:start] + new + content[end:]})
    return out


def _final_user_index(messages: list[ChatMessage]) -> int | None:
    return next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)


def _tool_call(call: dict[str, Any], default_id: str) -> dict[str, Any]:
    out = copy.deepcopy(call)
    out["id"] = out.get("id") or default_id
    out.setdefault("type", "function")
    function = out.get("function")
    if isinstance(function, dict) and not isinstance(function.get("arguments"), str):
        function["arguments"] = json.dumps(function.get("arguments") or {}, sort_keys=True)
    return out


def _answer_turns(answer: ChatMessage, demo_index: int) -> list[ChatMessage]:
    if not answer.tool_calls:
        return [ChatMessage(role="assistant", content=answer.content or "")]
    calls = [_tool_call(c, f"demo_{demo_index}_{j}") for j, c in enumerate(answer.tool_calls)]
    results = [ChatMessage(role="tool", tool_call_id=c["id"], content=TOOL_RESULT) for c in calls]
    return [ChatMessage(role="assistant", content=None, tool_calls=calls), *results]


def _demo_turns(demos: list[FewShotExample]) -> list[ChatMessage]:
    turns: list[ChatMessage] = []
    for index, demo in enumerate(demos):
        turns += [ChatMessage(role="user", content=demo.input), *_answer_turns(demo.answer, index)]
    return turns


def inject_demos(messages: list[ChatMessage], demos: list[FewShotExample]) -> list[ChatMessage]:
    """Insert each demo as turns (user input, then the answer) just before the final user message."""
    out = _copy(messages)
    if not demos:
        return out
    index = _final_user_index(out)
    if index is None:
        raise TransformApplicationError("cannot inject demos: the messages have no user message")
    return out[:index] + _demo_turns(demos) + out[index:]


def _demos_present(messages: list[ChatMessage], demos: list[FewShotExample]) -> bool:
    if not demos:
        return True
    index, turns = _final_user_index(messages), _demo_turns(demos)
    if index is None or index < len(turns):
        return False
    window = messages[index - len(turns) : index]
    return [m.as_openai() for m in window] == [t.as_openai() for t in turns]


def _prompt_for(candidate: CompiledCandidate, stage_id: str) -> StagePrompt:
    for prompt in candidate.stages:
        if prompt.stage_id == stage_id:
            return prompt
    raise TransformApplicationError(f"stage {stage_id!r}: the candidate has no prompt for this stage")


def _already_applied(messages: list[ChatMessage], spec: StageSpec, instruction: str) -> bool:
    """Whether the located baseline already carries the instruction (so applying again must not)."""
    hit = _locate(messages, spec)
    if hit is None:
        return False
    index, start, end = hit
    content, instruction = messages[index].content or "", instruction.strip()
    if not instruction:
        return False
    if spec.mode == "follow":
        tail = _pattern(FOLLOW_SEPARATOR + instruction, spec.case_sensitive)
        return tail.match(content, end) is not None
    spans = (m.span() for m in _pattern(instruction, spec.case_sensitive).finditer(content))
    return any(s <= start and end <= e for s, e in spans)


def _carried_prompt(
    messages: list[ChatMessage], stages: list[StageSpec], candidate: CompiledCandidate
) -> StagePrompt:
    """The prompt of the first stage whose candidate instruction the messages already carry."""
    for spec in stages:
        prompt = next((p for p in candidate.stages if p.stage_id == spec.stage_id), None)
        if prompt is not None and _carries(messages, spec, prompt.instruction):
            return prompt
    looked_for = ", ".join(
        f"{s.stage_id!r} ({s.role}: {s.baseline_instruction.strip()[:80]!r})" for s in stages
    )
    raise TransformApplicationError(
        f"no stage matched: neither a baseline nor a candidate instruction was found; looked for {looked_for}"
    )


def compile_messages(
    messages: list[ChatMessage], stages: list[StageSpec], candidate: CompiledCandidate
) -> list[ChatMessage]:
    """Locate the stage and apply the candidate's prompt for it (instruction, then demos). Idempotent."""
    spec = locate_stage(messages, stages)
    if spec is None:
        prompt, out = _carried_prompt(messages, stages, candidate), _copy(messages)
        return out if _demos_present(out, prompt.demos) else inject_demos(out, prompt.demos)
    return compile_stage_messages(messages, spec, candidate)


def compile_stage_messages(
    messages: list[ChatMessage], spec: StageSpec, candidate: CompiledCandidate
) -> list[ChatMessage]:
    """Apply the candidate's prompt for a stage already known (e.g. named by the call's URL): its
    instruction where the stage's baseline sits, or nothing when the messages already carry the candidate's
    instruction (a task app that rendered the candidate itself), then its demos. Idempotent."""
    prompt = _prompt_for(candidate, spec.stage_id)
    carried = _locate(messages, spec) is None and _carries(messages, spec, prompt.instruction)
    if carried or _already_applied(messages, spec, prompt.instruction):
        out = _copy(messages)
    else:
        out = apply_instruction(messages, spec, prompt.instruction)
    return out if _demos_present(out, prompt.demos) else inject_demos(out, prompt.demos)


def _carries(messages: list[ChatMessage], spec: StageSpec, instruction: str) -> bool:
    """Whether a message of the stage's role holds the candidate's instruction (as a substring)."""
    if not instruction.strip():
        return False
    carried = spec.model_copy(update={"baseline_instruction": instruction, "match": "substring"})
    return _locate(messages, carried) is not None


def render_ready_messages(
    template: list[ChatMessage], stages: list[StageSpec], candidate: CompiledCandidate
) -> list[ChatMessage]:
    """The candidate's ready-to-use messages: `compile_messages` on the initial prompt's message patterns."""
    return compile_messages(template, stages, candidate)


def compile_choice(
    stages: list[StageSpec],
    instructions: list[list[str]],
    demo_sets: list[list[list[int]]],
    demo_pool: list[list[FewShotExample]],
    choice: CandidateChoice,
) -> CompiledCandidate:
    """The candidate a choice names: per stage, the chosen instruction and the chosen demo set's demos.

    Before the proposal phase (no instructions yet) every stage has only its baseline instruction, and
    before bootstrap only the empty demo set.
    """
    prompts = []
    for i, stage in enumerate(stages):
        texts = instructions[i] if instructions else [stage.baseline_instruction]
        sets = demo_sets[i] if demo_sets else [[]]
        demos = [demo_pool[i][j] for j in sets[choice.demo_set[i]]]
        prompts.append(
            StagePrompt(stage_id=stage.stage_id, instruction=texts[choice.instruction[i]], demos=demos)
        )
    return CompiledCandidate(stages=prompts)
