"""Multi-stage pipelines: `mipro.modules` read into the flat stage list, and the candidate as the public
pipeline task apps read it (`policy.config.prompt_template.prompt_metadata.pipeline_modules`).

A module groups stages (`{module_id, stages[], edges[]}`); each stage keeps its `module_id`. Edges
`[from_stage, to_stage]` say which stage's output feeds which: they must name stages of the job and form no
cycle. They do not change the search (each stage has its own instructions and demo sets either way): they
are checked and kept in the config.

Pure functions; nothing here does I/O.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mipro.proposer.query import query_part
from mipro.types import ChatMessage, CompiledCandidate, FewShotExample, StageSpec


class ModuleSpec(BaseModel):
    """`[[prompt_learning.mipro.modules]]`: a pipeline module, its stages and the edges between stages."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    module_id: str = Field(min_length=1)
    stages: list[StageSpec] = Field(min_length=1)
    edges: list[tuple[str, str]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _stages_take_the_module_id(cls, data: Any) -> Any:
        """Each stage carries its module's id (a stage naming another module is refused) and, unless it sets
        its own, the module's `max_demo_slots` / `max_instruction_slots` (the reference's module keys)."""
        if not isinstance(data, dict):
            return data
        if "stages" not in data:
            raise ValueError(
                f"module {data.get('module_id')!r} declares no stages: add [[...modules.stages]] with "
                "stage_id and baseline_instruction (the stage's text in the calls the task app sends)"
            )
        if not isinstance(data["stages"], list):
            return data
        data = dict(data)
        module_id = data.get("module_id")
        inherited = {k: data.pop(k) for k in ("max_demo_slots", "max_instruction_slots") if k in data}
        stages = []
        for i, stage in enumerate(data["stages"]):
            if isinstance(stage, dict):
                written = stage.get("module_id", module_id)
                if written != module_id:
                    raise ValueError(
                        f"stages[{i}] sets module_id {written!r} inside module {module_id!r}: remove it "
                        "(a stage takes the id of the module it is declared in)"
                    )
                stage = {**inherited, **stage, "module_id": module_id}
            stages.append(stage)
        return {**data, "stages": stages}


def module_stages(modules: list[ModuleSpec]) -> list[StageSpec]:
    """The modules' stages in declaration order (module by module), each with its module_id."""
    return [stage for module in modules for stage in module.stages]


def pipeline_problems(modules: list[ModuleSpec], flat: list[StageSpec]) -> list[str]:
    """What is wrong with the declared pipeline: stages both flat and in modules, repeated module or stage
    ids, edges naming unknown stages, and cycles. Empty when all is well."""
    problems: list[str] = []
    if modules and flat:
        problems.append(
            "stages are declared both in mipro.stages and in mipro.modules: declare them in one place "
            "(modules for a pipeline, stages for flat stages)"
        )
    module_ids = [m.module_id for m in modules]
    if repeated := sorted({m for m in module_ids if module_ids.count(m) > 1}):
        problems.append(f"module_id repeated: {', '.join(map(repr, repeated))}: each module needs its own")
    stage_ids = [s.stage_id for s in (module_stages(modules) if modules else flat)]
    if repeated := sorted({s for s in stage_ids if stage_ids.count(s) > 1}):
        problems.append(
            f"stage_id repeated: {', '.join(map(repr, repeated))}: stage ids must be unique across the job "
            "(a call is mapped to its stage by id)"
        )
    known = set(stage_ids)
    edges = [(m.module_id, e) for m in modules for e in m.edges]
    for module_id, (source, target) in edges:
        unknown = [s for s in (source, target) if s not in known]
        if unknown:
            problems.append(
                f"module {module_id!r}: edge [{source!r}, {target!r}] names no stage of the job "
                f"({', '.join(map(repr, unknown))}); stages: {', '.join(map(repr, stage_ids))}"
            )
    if cycle := find_cycle([e for _, e in edges if e[0] in known and e[1] in known]):
        problems.append(
            f"the edges form a cycle ({' -> '.join(map(repr, cycle))}): a pipeline's stages must feed "
            "each other in one direction"
        )
    return problems


def find_cycle(edges: list[tuple[str, str]]) -> list[str] | None:
    """A cycle of the directed graph as a closed path ([a, b, a]), or None when it has none."""
    graph: dict[str, list[str]] = {}
    for source, target in edges:
        graph.setdefault(source, []).append(target)
        graph.setdefault(target, [])
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt, [*path, nxt])):
                return found
        state[node] = 2
        return None

    for start in graph:
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def answer_value(answer: ChatMessage) -> str:
    """A demo's answer as one string: the text, or a tool call's single argument (else the arguments)."""
    if not answer.tool_calls:
        return (answer.content or "").strip()
    function = answer.tool_calls[0].get("function") or {}
    raw = function.get("arguments") if isinstance(function, dict) else None
    try:
        args = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return str(raw)
    values = list(args.values()) if isinstance(args, dict) else []
    if len(values) == 1 and isinstance(values[0], str):
        return values[0]
    return json.dumps(args, sort_keys=True)


def few_shot(demo: FewShotExample) -> dict[str, Any]:
    """A demo as the public pipeline apps read `few_shots` (`input`/`input_text`, `output`/`output_text`:
    the query and the answer), with the whole demo (`demo`: its final user turn and answer message) for
    apps that render demos as turns, as the interceptor does."""
    query, output = query_part(demo.input), answer_value(demo.answer)
    return {
        "input": query,
        "input_text": query,
        "output": output,
        "output_text": output,
        "demo": demo.model_dump(mode="json"),
    }


def pipeline_modules(stages: list[StageSpec], candidate: CompiledCandidate) -> list[dict[str, Any]]:
    """The candidate per module, in stage order: `{name, module_id, instruction_text, few_shots, stages}`,
    each stage `{stage_id, baseline_instruction, instruction_text, few_shots}`. A module's own
    `instruction_text` and `few_shots` are its first stage's (the public apps run one stage per module)."""
    prompts = {p.stage_id: p for p in candidate.stages}
    modules: dict[str, dict[str, Any]] = {}
    for spec in stages:
        prompt = prompts.get(spec.stage_id)
        if prompt is None:
            continue
        entry = {
            "stage_id": spec.stage_id,
            "baseline_instruction": spec.baseline_instruction,
            "instruction_text": prompt.instruction,
            "few_shots": [few_shot(d) for d in prompt.demos],
        }
        module = modules.setdefault(
            spec.module_id,
            {
                "name": spec.module_id,
                "module_id": spec.module_id,
                "instruction_text": entry["instruction_text"],
                "few_shots": entry["few_shots"],
                "stages": [],
            },
        )
        module["stages"].append(entry)
    return list(modules.values())


def candidate_template(
    template: dict[str, Any], stages: list[StageSpec], candidate: CompiledCandidate
) -> dict[str, Any]:
    """`policy.config.prompt_template` for a rollout of `candidate`: the job's template (its sections are
    the baseline patterns), with the candidate as `pipeline_modules` in its metadata, under both of the
    reference's spellings (`metadata` and `prompt_metadata`)."""
    metadata = template.get("metadata")
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    metadata["pipeline_modules"] = pipeline_modules(stages, candidate)
    return {**template, "metadata": metadata, "prompt_metadata": metadata}
