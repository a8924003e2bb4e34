"""The meta-model behaviour of the simulated LLM for DSPy's own prompts (MIPROv2's proposer). Pure functions.

DSPy's MIPROv2 asks its prompt model, through the ChatAdapter (`[[ ## field ## ]]` markers), for:
- `observations` (DatasetDescriptor / ...WithPriorObservations, input `examples`: a repr of DSPy Examples)
  and a `summary` of them (ObservationSummarizer, input `observations`): the data summary;
- `program_description` (DescribeProgram) and `module_description` (DescribeModule), input `program_code`;
- `proposed_instruction` (GroundedProposer's GenerateSingleModuleInstruction), inputs `basic_instruction`,
  `task_demos` ("Query: ...\\nIntent: ..." blocks, or "No task demos provided."), `tip`, ...

Each is recognised by its output field *and* its DSPy input fields (so a user's program with an output
field named `summary` is still classified), and answered in DSPy's format. A proposal is written by the
same grounded proposer as for our own meta-prompts (`meta.propose_from`): the basic instruction in the
style of the tip, then rules grounded in the task demos DSPy shows.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from mipro.proposer.examples import dspy_fields
from mipro.proposer.tips import tip_name
from mipro.simllm.formats import dspy_output_fields
from mipro.simllm.meta import ProposalRequest, propose_from, summary_of
from mipro.simllm.prompt import message_text
from mipro.simllm.text import stable_hash

_EXAMPLE_REPR = re.compile(r"Example\((\{.*?\})\)\s*\(input_keys=\{([^}]*)\}\)", re.DOTALL)
_DEMO_FIELD = re.compile(r"^([A-Z][\w ]{0,40}?):[ \t]?(.*)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
NO_DEMOS = "No task demos provided."


def _final_user(messages: list[dict[str, Any]]) -> str:
    return next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")


def dspy_inputs(messages: list[dict[str, Any]]) -> dict[str, str]:
    """The `[[ ## name ## ]]` input fields of the final user turn, by name."""
    return {name: value for name, value in dspy_fields(_final_user(messages)) if name != "completed"}


def parse_example_reprs(text: str) -> list[tuple[str, str]]:
    """(input, output) of every `Example({...}) (input_keys={...})` in a repr of DSPy Examples."""
    out: list[tuple[str, str]] = []
    for body, keys in _EXAMPLE_REPR.findall(text):
        try:
            values = ast.literal_eval(body)
        except (ValueError, SyntaxError):
            continue
        if not isinstance(values, dict):
            continue
        inputs = {k.strip().strip("'\"") for k in keys.split(",")}
        given = " ".join(str(v) for k, v in values.items() if k in inputs)
        answer = next((str(v) for k, v in values.items() if k not in inputs), "")
        if given:
            out.append((given, answer))
    return out


def parse_task_demos(text: str) -> list[tuple[str, str]]:
    """(input, output) of DSPy's `task_demos`: blank-line separated blocks of "Prefix: value" lines,
    the inputs first and the output last (the signature's field order)."""
    if text.strip() == NO_DEMOS:
        return []
    out: list[tuple[str, str]] = []
    for block in re.split(r"\n[ \t]*\n", text.strip()):
        values: list[str] = []
        for line in block.splitlines():
            field = _DEMO_FIELD.match(line)
            if field is not None:
                values.append(field.group(2).strip())
            elif values:
                values[-1] = f"{values[-1]}\n{line}".strip()
        if len(values) >= 2 and values[-1]:
            out.append((" ".join(values[:-1]), values[-1].splitlines()[0].strip()))
    return out


def _proposal(inputs: dict[str, str], temperature: float) -> str:
    user_text = "\n".join(f"{k}={v}" for k, v in sorted(inputs.items()))
    req = ProposalRequest(
        basic=inputs.get("basic_instruction", ""),
        task=" ".join(inputs.get(k, "") for k in ("program_description", "module_description")),
        examples=parse_task_demos(inputs.get("task_demos", "")),
        history=[],  # MIPROv2 runs the proposer with use_instruct_history=False
        tip=tip_name(inputs.get("tip", "")),
        index=stable_hash(user_text) % 1_000_000,  # DSPy sends no proposal number: vary with what it shows
    )
    return propose_from(req, temperature)


def _first_sentences(text: str, n: int = 3) -> str:
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s]
    return " ".join(sentences[:n]) if sentences else "No observations were made."


def _module_of(inputs: dict[str, str]) -> str:
    module = inputs.get("module", "").strip()
    return module if module and module != "Not provided" else "a single Predict module"


def _program_description(inputs: dict[str, str]) -> str:
    examples = parse_task_demos(inputs.get("program_example", ""))
    shown = f" For example, it maps '{examples[0][0]}' to '{examples[0][1]}'." if examples else ""
    return (
        "The program solves a classification task: it reads one input text and answers with exactly one "
        f"label from a fixed list, using one call to a language model.{shown}"
    )


def _module_description(inputs: dict[str, str]) -> str:
    return (
        f"The module {_module_of(inputs)} is the whole program: it reads the input field(s) and returns the "
        "single best label, spelled exactly as listed."
    )


def _answer_value(fields: list[str], inputs: dict[str, str], temperature: float) -> tuple[str, str] | None:
    """(output field, value) for a DSPy proposer prompt, else None."""
    if "proposed_instruction" in fields and "basic_instruction" in inputs:
        return "proposed_instruction", _proposal(inputs, temperature)
    if "observations" in fields and "examples" in inputs:
        return "observations", summary_of(parse_example_reprs(inputs["examples"]))
    if "summary" in fields and "observations" in inputs and len(inputs) == 1:
        return "summary", _first_sentences(inputs["observations"])
    if "module_description" in fields and "program_code" in inputs and "module" in inputs:
        return "module_description", _module_description(inputs)
    if "program_description" in fields and "program_code" in inputs:
        return "program_description", _program_description(inputs)
    return None


def dspy_meta_answer(messages: list[dict[str, Any]], temperature: float) -> str | None:
    """The DSPy-formatted answer to one of MIPROv2's proposer prompts, or None for any other request."""
    fields = dspy_output_fields(messages)
    if not fields:
        return None
    found = _answer_value(fields, dspy_inputs(messages), temperature)
    if found is None:
        return None
    name, value = found
    return f"[[ ## {name} ## ]]\n{value}\n\n[[ ## completed ## ]]"
