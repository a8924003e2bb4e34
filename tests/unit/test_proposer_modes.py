"""Proposer modes (issue 9 item 2): dspy (data summary, task, demos, tips) and synth / gepa-ai (a system spec,
a custom metaprompt); proposer_effort and proposer_output_tokens; instructions_per_batch, max_instructions
and duplicate_retry_limit; the reference corpus. Prompts as pure functions, spec files at config load, and
the real proposal activity against the simulated meta-model (in process, every request recorded)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from temporalio.testing import ActivityEnvironment

from mipro.activities.proposals import ProposalActivities
from mipro.activities.resources import WorkerResources
from mipro.activity_models import ProposeInput, ProposeOutput
from mipro.config import JobConfig, load_config_file, parse_config
from mipro.errors import MIPROConfigurationError
from mipro.proposer import PROPOSAL_HEADER, SUMMARY_HEADER, TIPS, ProposalContext, build_proposal_messages
from mipro.proposer.parse import ProposalParseError, parse_instructions
from mipro.proposer.profile import EFFORT, OUTPUT_TOKENS, ProposerSettings
from mipro.proposer.spec import fill_metaprompt, metaprompt_problems, render_spec
from mipro.proposer.tips import TIP_NAMES
from mipro.simllm.app import completion
from mipro.simllm.meta import ProposalRequest, is_proposal, propose_from, read_proposal
from mipro.simllm.settings import SimLLMSettings
from mipro.types import StageSpec
from tests.conftest import REPO
from tests.unit.test_proposer import BASELINE, example

QUERIES = {
    "card_arrival": ["when will my new card arrive in the post", "my card still has not been delivered"],
    "exchange_rate": ["what exchange rate do you use for euros", "how are currency conversion rates set"],
    "lost_or_stolen_card": ["someone stole my wallet with the card", "i lost my card on the train"],
    "top_up_failed": ["my top up did not go through", "the top-up with my bank transfer failed"],
    "pin_blocked": ["i entered the wrong pin three times", "my pin is blocked after mistakes"],
    "cash_withdrawal_charge": ["why was i charged a fee at the atm", "withdrawal fee for cash is too high"],
}
EXAMPLES = [
    example(i, query, intent, tool=i % 2 == 0)
    for i, (intent, query) in enumerate((k, q) for k, qs in QUERIES.items() for q in qs)
]

SPEC = {
    "purpose": "Route banking customers' messages to the team that handles them.",
    "principles": ["Never guess: when unsure, choose the label whose meaning fits best."],
    "rules": [{"id": "R1", "text": "Answer with exactly one intent label, spelled as listed."}],
}
FIXED = "Classify the customer's query into exactly one banking intent label."


# ---- a simulated meta-model that records every request --------------------------------------------------


def batch_size_asked(body: dict[str, Any]) -> int:
    """How many instructions a proposal request asks for (1 unless it asks for a JSON batch)."""
    user = body["messages"][-1]["content"]
    marker = "Proposed instructions ("
    return int(user.rsplit(marker, 1)[1].split(",", 1)[0]) if marker in user else 1


def batch_item(req: ProposalRequest, j: int, n: int) -> ProposalRequest:
    """The j-th of n proposals of a batch request: another proposal index, and (n > 1) another style, as a
    meta-model writing several instructions at once varies them."""
    if n == 1:
        return req
    return dataclasses.replace(
        req, index=req.index * 100 + j, tip=TIP_NAMES[(req.index + j) % len(TIP_NAMES)]
    )


def recording_meta_model(calls: list[dict[str, Any]], fixed: str | None = None) -> FastAPI:
    """The simulated LLM as meta-model, recording each request body. It answers a batch request (the
    simulated LLM writes one instruction per request) with a JSON list of that many of its proposals
    (`batch_item`); `fixed`: every proposal answer is that text (a repeating meta-model).
    """
    settings, app = SimLLMSettings(), FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict[str, Any]:
        body = await request.json()
        calls.append(body)
        out = completion(body, settings)
        messages = body["messages"]
        if is_proposal(messages):
            n = batch_size_asked(body)
            if fixed is not None:
                texts = [fixed] * n
            else:
                req = read_proposal(messages)
                texts = [propose_from(batch_item(req, j, n), body["temperature"]) for j in range(n)]
            out["choices"][0]["message"]["content"] = (
                texts[0] if n == 1 else json.dumps({"instructions": texts})
            )
        return out

    return app


def proposals(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in calls if c["messages"][0]["content"].startswith(PROPOSAL_HEADER)]


def summaries(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in calls if c["messages"][0]["content"].startswith(SUMMARY_HEADER)]


def shipped_body(**mipro: Any) -> dict[str, Any]:
    body = copy.deepcopy(tomllib.loads((REPO / "configs" / "banking77.toml").read_text())["prompt_learning"])
    body["mipro"].update(mipro)
    return body


def propose_input(n: int = 4, limit: int = 10, **proposer: Any) -> ProposeInput:
    config = parse_config({"prompt_learning": shipped_body()})
    meta = config.mipro.meta.model_copy(update={"inference_url": "http://meta.test/v1"})
    return ProposeInput(
        job_id="job-proposer-modes",
        meta=meta,
        meta_price=None,
        stage=StageSpec(stage_id="default", baseline_instruction=BASELINE),
        task_description="Classify banking customer queries into 77 intents.",
        demos=EXAMPLES,
        existing=[BASELINE],
        n=n,
        duplicate_retry_limit=limit,
        seed=11,
        proposer=ProposerSettings(**proposer),
        reference_inputs=[f"reference question number {i}" for i in range(60)],
    )


def run_activity(inp: ProposeInput, fixed: str | None = None) -> tuple[ProposeOutput, list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    async def go() -> ProposeOutput:
        transport = httpx.ASGITransport(app=recording_meta_model(calls, fixed))
        async with httpx.AsyncClient(transport=transport) as http:
            resources = WorkerResources(
                registry=None,  # type: ignore[arg-type]  # the proposal activity never uses it
                interceptor_url="",
                http=http,
                rollout_slots=asyncio.Semaphore(1),
            )
            return await ActivityEnvironment().run(ProposalActivities(resources).propose_instructions, inp)

    return asyncio.run(go()), calls


# ---- prompts --------------------------------------------------------------------------------------------


def test_synth_prompt_is_grounded_in_the_spec_not_a_tip() -> None:
    spec = render_spec(SPEC, 5000)
    ctx = ProposalContext(
        task_description="Route messages.", baseline_instruction=BASELINE, demos=EXAMPLES, mode="synth",
        spec_text=spec, tip="persona",
    )  # fmt: skip
    system, user = (m["content"] for m in build_proposal_messages(ctx))
    assert system.startswith(PROPOSAL_HEADER) and "system specification" in system
    assert "<system_spec>" in system and "never contradicts the specification" in system
    assert user.startswith(f"<system_spec>\n{spec}\n</system_spec>")
    assert "<tip>" not in user and TIPS["persona"] not in user, "the synth proposer shows no DSPy tip"
    assert "R1" in spec and "- Never guess" in spec and "purpose: Route banking" in spec
    dspy = build_proposal_messages(ctx.model_copy(update={"mode": "dspy"}))
    assert "<system_spec>" not in dspy[1]["content"] and "<tip>" in dspy[1]["content"]


def test_spec_text_is_cut_at_spec_max_tokens() -> None:
    long = "rule " * 10_000
    assert len(render_spec(long, 100)) < 100 * 4 + 60 and render_spec(long, 100).endswith("spec_max_tokens]")
    assert render_spec("short", 100) == "short"


def test_metaprompt_replaces_the_guidance_with_its_placeholders_filled() -> None:
    template = "Write {n} instructions for stage {stage_id} obeying:\n{spec}\nKeep {{braces}}."
    assert metaprompt_problems(template) == []
    ctx = ProposalContext(
        task_description="t", baseline_instruction=BASELINE, mode="synth", spec_text="Be exact.",
        metaprompt=template, stage_id="router", count=2,
    )  # fmt: skip
    system = build_proposal_messages(ctx)[0]["content"]
    assert "Write 2 instructions for stage router obeying:\nBe exact.\nKeep {braces}." in system
    assert "Write 2 instructions, each of which" not in system, "the template replaces the default guidance"
    assert system.startswith(PROPOSAL_HEADER) and '{"instructions": [' in system, "reply format stays"
    assert fill_metaprompt("{task_description}", {"task_description": "x"}) == "x"
    for bad in ("{spec.__class__}", "{0}", "{unknown}", "{n!r}", "{n:>9}", "open { brace"):
        assert metaprompt_problems(bad), bad


def test_effort_sets_what_a_proposal_shows() -> None:
    history = [(f"Instruction number {i}.", i / 10) for i in range(12)]
    shown = {}
    for effort, profile in EFFORT.items():
        ctx = ProposalContext(
            task_description="t", baseline_instruction=BASELINE, demos=EXAMPLES * 3,
            history=[{"text": t, "score": s} for t, s in history], max_examples=profile.demos,
            reference_inputs=[f"ref {i}" for i in range(60)], max_reference_inputs=profile.reference_inputs,
            max_history_each_side=profile.history_each_side,
        )  # fmt: skip
        user = build_proposal_messages(ctx)[1]["content"]
        shown[effort] = (user.count("<example index="), user.count("<input index="), user.count("score="))
    assert shown == {
        "LOW_CONTEXT": (2, 5, 2),
        "LOW": (3, 10, 4),
        "MEDIUM": (5, 20, 6),
        "HIGH": (10, 50, 10),
    }


def test_reference_inputs_rotate_like_the_demos() -> None:
    def window(index: int) -> list[str]:
        ctx = ProposalContext(
            task_description="t", baseline_instruction=BASELINE, proposal_index=index,
            reference_inputs=[f"ref {i}" for i in range(8)], max_reference_inputs=5,
        )  # fmt: skip
        user = build_proposal_messages(ctx)[1]["content"]
        return [line for line in user.splitlines() if line.startswith("ref ")]

    assert len(window(0)) == 5 and set(window(0)) | set(window(1)) == {f"ref {i}" for i in range(8)}
    system = build_proposal_messages(
        ProposalContext(task_description="t", baseline_instruction=BASELINE, reference_inputs=["a"])
    )[0]["content"]
    assert "<reference_inputs>: more inputs of the task, without outputs" in system


def test_output_tokens_level_asks_for_a_length() -> None:
    ctx = ProposalContext(task_description="t", baseline_instruction=BASELINE, length_words=60)
    assert "- is at most 60 words long." in build_proposal_messages(ctx)[0]["content"]
    assert OUTPUT_TOKENS == {"RAPID": (256, 60), "FAST": (512, 150), "SLOW": (2048, 400)}
    settings = ProposerSettings(output_tokens="SLOW", instructions_per_batch=3)
    assert settings.length_words == 400 and settings.max_tokens(2048, 3) == 6144


def test_a_batch_prompt_asks_for_a_json_list_with_a_tip_each() -> None:
    ctx = ProposalContext(
        task_description="t", baseline_instruction=BASELINE, count=3, batch_tips=["persona", "simple", "none"]
    )
    system, user = (m["content"] for m in build_proposal_messages(ctx))
    assert '{"instructions": ["<instruction 1>", ..., "<instruction 3>"]}' in system
    assert "Write 3 instructions, each of which" in system and "follows its tip" in system
    assert (
        "<tips>\nInstruction 1: Include a persona" in user and "Instruction 2: Keep the instruction" in user
    )
    assert user.endswith("Proposed instructions (3, JSON):")


def test_parse_instructions_reads_batches_and_single_answers() -> None:
    two = json.dumps({"instructions": ["Classify the query well.", "ok", "Answer with one label only."]})
    assert parse_instructions(two, 3) == ["Classify the query well.", "Answer with one label only."]
    assert parse_instructions(f"```json\n{two}\n```", 3)[1] == "Answer with one label only."
    tagged = (
        "<instruction>Classify the query well.</instruction>\n<instruction>One label, please.</instruction>"
    )
    assert len(parse_instructions(tagged, 2)) == 2
    headed = "Instruction 1: Classify the query well.\n\nInstruction 2: Answer with exactly one label."
    assert parse_instructions(headed, 2) == ["Classify the query well.", "Answer with exactly one label."]
    single = "Classify the query.\n\nRules:\n- If the query mentions post, the intent is card_arrival."
    assert parse_instructions(single, 3) == [single], "one instruction with rule lines stays one"
    with pytest.raises(ProposalParseError):
        parse_instructions(json.dumps({"instructions": ["", "ok"]}), 2)


# ---- config: levels, modes, spec files ------------------------------------------------------------------


def test_levels_fill_the_meta_model_settings_the_config_does_not_set() -> None:
    body = shipped_body(proposer_effort="low_context", proposer_output_tokens="slow")
    del body["mipro"]["meta"]["temperature"], body["mipro"]["meta"]["max_tokens"]
    m = parse_config({"prompt_learning": body}).mipro
    assert (m.proposer_effort, m.meta.temperature, m.meta.max_tokens) == ("LOW_CONTEXT", 0.6, 2048)
    explicit = parse_config({"prompt_learning": shipped_body(proposer_effort="HIGH")}).mipro
    assert explicit.meta.temperature == 0.8, "an explicit meta.temperature wins over the level's"


def test_synth_needs_a_spec_and_spec_metaprompt_need_synth() -> None:
    with pytest.raises(MIPROConfigurationError, match=r"mipro\.spec: .*grounded in a system spec"):
        parse_config({"prompt_learning": shipped_body(proposer_mode="synth")})
    with pytest.raises(MIPROConfigurationError, match=r"mipro\.metaprompt: .*synth proposer only"):
        parse_config({"prompt_learning": shipped_body(metaprompt="Write {n}.")})
    with pytest.raises(MIPROConfigurationError, match=r"mipro\.metaprompt: .*not a placeholder"):
        parse_config({"prompt_learning": shipped_body(proposer_mode="synth", spec="x", metaprompt="{x}")})
    gepa = parse_config({"prompt_learning": shipped_body(proposer_mode="GEPA-AI", spec="x")}).mipro
    assert (gepa.proposer_mode, gepa.spec) == ("gepa-ai", "x")
    with pytest.raises(MIPROConfigurationError, match=r"mipro\.spec: .*workflow history"):
        parse_config({"prompt_learning": shipped_body(proposer_mode="synth", spec="rule " * 30_000)})


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("spec.json", json.dumps(SPEC), SPEC),
        ("spec.toml", 'purpose = "Route."\nrules = ["One."]\n', {"purpose": "Route.", "rules": ["One."]}),
        ("spec.md", "# Spec\n\n- One label.\n", "# Spec\n\n- One label.\n"),
    ],
)  # fmt: skip
def test_spec_path_is_read_when_the_config_file_is_loaded(
    tmp_path: Path, name: str, text: str, expected: Any
) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / name).write_text(text)
    config_file = tmp_path / "job.toml"
    config_file.write_text((REPO / "configs" / "banking77.toml").read_text())
    config = load_config_file(config_file, ['mipro.proposer_mode="synth"', f'mipro.spec_path="specs/{name}"'])
    assert config.mipro.spec == expected and config.mipro.spec_path is None
    (tmp_path / "specs" / name).unlink()  # the workflow gets the spec as data: the file is never read again
    assert JobConfig.model_validate_json(config.model_dump_json()) == config


def test_spec_path_problems_are_named(tmp_path: Path) -> None:
    config_file = tmp_path / "job.toml"
    config_file.write_text((REPO / "configs" / "banking77.toml").read_text())
    synth = 'mipro.proposer_mode="synth"'
    for overrides, message in [
        ([synth, 'mipro.spec_path="missing.md"'], "cannot read the spec file"),
        ([synth, 'mipro.spec_path="spec.yaml"'], "unknown spec file type"),
        ([synth, 'mipro.spec_path="job.toml"', 'mipro.spec="x"'], "spec and spec_path are both set"),
    ]:
        with pytest.raises(MIPROConfigurationError, match=message) as info:
            load_config_file(config_file, overrides)
        assert info.value.problems[0][0] == "prompt_learning.mipro.spec_path"
    # A body sent as JSON (the REST API) names no file of the server: spec_path is refused there.
    with pytest.raises(MIPROConfigurationError, match="spec_path is read when a config file is loaded"):
        parse_config({"prompt_learning": shipped_body(proposer_mode="synth", spec_path="/etc/hostname")})


# ---- the proposal activity against the simulated meta-model ---------------------------------------------


def test_instructions_per_batch_asks_several_per_call() -> None:
    out, calls = run_activity(propose_input(n=5, instructions_per_batch=3))
    assert len(out.instructions) == 5
    assert [batch_size_asked(c) for c in proposals(calls)] == [3, 2], "ceil(5 / 3) calls, the last asks for 2"
    one, calls_one = run_activity(propose_input(n=5, instructions_per_batch=1))
    assert len(one.instructions) == 5 and len(proposals(calls_one)) == 5
    assert out.usage.calls == len(calls) and one.usage.calls == len(calls_one)


def test_duplicate_retry_limit_bounds_the_extra_calls() -> None:
    for limit in (0, 3):
        out, calls = run_activity(propose_input(n=4, limit=limit), fixed=FIXED)
        assert out.instructions == [FIXED], "a repeated instruction is accepted once"
        assert len(proposals(calls)) == 4 + limit and out.duplicates_rejected == 3 + limit
    batch, calls = run_activity(propose_input(n=4, limit=2, instructions_per_batch=2), fixed=FIXED)
    assert len(proposals(calls)) == 2 + 2 and batch.instructions == [FIXED]


def test_dspy_mode_writes_a_data_summary_first_and_shows_it() -> None:
    out, calls = run_activity(propose_input(n=2))  # no effort: MEDIUM
    [summary] = summaries(calls)
    assert calls[0] is summary and summary["messages"][1]["content"].count("<example index=") == len(EXAMPLES)
    text = completion(summary, SimLLMSettings())["choices"][0]["message"]["content"]
    assert all(
        f"<data_summary>\n{text}\n</data_summary>" in p["messages"][1]["content"] for p in proposals(calls)
    )
    assert all("<tip>" in p["messages"][1]["content"] for p in proposals(calls))
    assert out.usage.calls == 3
    _, low_context = run_activity(propose_input(n=2, effort="LOW_CONTEXT"))
    assert summaries(low_context) == [], "LOW_CONTEXT writes no summary"


def test_synth_mode_shows_the_spec_and_the_reference_corpus() -> None:
    inp = propose_input(n=2, mode="synth", spec=SPEC, effort="HIGH", output_tokens="RAPID")
    inp = inp.model_copy(update={"meta": inp.meta.model_copy(update={"temperature": 1.0, "max_tokens": 256})})
    out, calls = run_activity(inp)
    assert len(out.instructions) == 2 and summaries(calls) == []
    for call in proposals(calls):
        user = call["messages"][1]["content"]
        assert render_spec(SPEC, 5000) in user and "<tip>" not in user
        assert user.count("<input index=") == EFFORT["HIGH"].reference_inputs
        assert user.count("<example index=") == min(EFFORT["HIGH"].demos, len(EXAMPLES))
        assert (call["temperature"], call["max_tokens"]) == (1.0, 256)
        assert "- is at most 60 words long." in call["messages"][0]["content"]


def test_the_calls_of_a_proposal_round_run_at_once() -> None:
    """The first ceil(n / instructions_per_batch) calls are in flight together; a meta-model that answers
    only once all four are in (or after 10 s) sees four at once. Sequential calls would peak at one."""
    calls: list[dict[str, Any]] = []
    inner = recording_meta_model(calls)
    seen = {"in_flight": 0, "peak": 0}
    all_in = asyncio.Event()

    async def barrier(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["in_flight"] += 1
        seen["peak"] = max(seen["peak"], seen["in_flight"])
        if seen["in_flight"] >= 4:
            all_in.set()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_in.wait(), 10)
            await inner(scope, receive, send)
        finally:
            seen["in_flight"] -= 1

    async def go() -> ProposeOutput:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=barrier)) as http:
            resources = WorkerResources(
                registry=None,  # type: ignore[arg-type]  # the proposal activity never uses it
                interceptor_url="",
                http=http,
                rollout_slots=asyncio.Semaphore(1),
            )
            inp = propose_input(n=4, effort="LOW_CONTEXT")  # no data summary call before the round
            return await ActivityEnvironment().run(ProposalActivities(resources).propose_instructions, inp)

    out = asyncio.run(go())
    assert seen["peak"] == 4, f"{seen['peak']} meta-model calls in flight at most"
    assert len(out.instructions) == 4 and len(proposals(calls)) == 4
