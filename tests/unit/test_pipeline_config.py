"""`mipro.modules` (pipeline modules with stages and edges) read into the flat stage list, the modules'
checks, and stages' `baseline_messages` (configs/banking77_pipeline.toml and the shipped banking77 config)."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import pytest

from mipro.config import JobConfig, parse_config
from mipro.errors import MIPROConfigurationError
from mipro.pipeline import find_cycle
from mipro.taskapps.banking77_pipeline.prompts import CLASSIFIER_SYSTEM, CLASSIFIER_USER, ROUTER_SYSTEM
from tests.conftest import REPO

PIPELINE = tomllib.loads((REPO / "configs" / "banking77_pipeline.toml").read_text())["prompt_learning"]


def body(modules: list[dict[str, Any]] | None = None, **mipro: Any) -> dict[str, Any]:
    out = copy.deepcopy(PIPELINE)
    if modules is not None:
        out["mipro"]["modules"] = modules
    out["mipro"].update(mipro)
    return out


def parse(doc: dict[str, Any]) -> JobConfig:
    return parse_config({"prompt_learning": doc})


def problems(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    with pytest.raises(MIPROConfigurationError) as info:
        parse(doc)
    return info.value.problems


def router(**extra: Any) -> dict[str, Any]:
    return {"stage_id": "router", "baseline_instruction": ROUTER_SYSTEM, **extra}


def classifier(**extra: Any) -> dict[str, Any]:
    messages = [
        {"role": "system", "pattern": CLASSIFIER_SYSTEM},
        {"role": "user", "pattern": CLASSIFIER_USER},
    ]
    return {"stage_id": "classifier", "baseline_messages": messages, **extra}


def test_the_shipped_pipeline_config_reads_into_two_stages_with_their_modules() -> None:
    config = parse(PIPELINE)
    stages = config.stages()
    assert [(s.stage_id, s.module_id) for s in stages] == [("router", "router"), ("classifier", "classifier")]
    assert stages[0].baseline_instruction == ROUTER_SYSTEM
    assert stages[1].baseline_instruction == CLASSIFIER_SYSTEM, "taken from its baseline_messages"
    assert config.mipro.modules[1].edges == [("router", "classifier")]
    assert config.mipro.stages == [], "the flat list is the modules' (config.stages())"
    again = JobConfig.model_validate(config.model_dump(mode="json"))
    assert again.stages() == stages, "a config survives its round trip through a workflow payload"


def test_one_module_with_several_stages_keeps_their_order_and_the_module_id() -> None:
    module = {"module_id": "pipe", "stages": [router(), classifier()], "edges": [["router", "classifier"]]}
    stages = parse(body([module])).stages()
    assert [(s.stage_id, s.module_id) for s in stages] == [("router", "pipe"), ("classifier", "pipe")]


def test_module_keys_are_the_stages_defaults_and_transform_settings_apply_inside_modules() -> None:
    module = {"module_id": "pipe", "max_demo_slots": 2, "stages": [router(), classifier(max_demo_slots=1)]}
    config = parse(body([module], transform_match_mode="exact"))
    assert [s.max_demo_slots for s in config.stages()] == [2, 1], "a stage's own setting wins"
    assert {s.match for s in config.stages()} == {"exact"}


@pytest.mark.parametrize(
    ("edges", "says"),
    [
        ([["router", "verifier"]], "edge ['router', 'verifier'] names no stage of the job ('verifier')"),
        (
            [["router", "classifier"], ["classifier", "router"]],
            "cycle ('router' -> 'classifier' -> 'router')",
        ),
        ([["router", "router"]], "cycle ('router' -> 'router')"),
    ],
)
def test_edges_must_name_stages_and_form_no_cycle(edges: list[list[str]], says: str) -> None:
    modules = [
        {"module_id": "a", "stages": [router()]},
        {"module_id": "b", "stages": [classifier()], "edges": edges},
    ]
    [(field, message, _)] = problems(body(modules))
    assert field == "prompt_learning.mipro" and says in message


def test_repeated_ids_stages_in_two_places_and_a_module_without_stages_are_refused() -> None:
    twice = [{"module_id": "a", "stages": [router()]}, {"module_id": "a", "stages": [classifier()]}]
    assert "module_id repeated: 'a'" in problems(body(twice))[0][1]
    same_stage = [{"module_id": "a", "stages": [router()]}, {"module_id": "b", "stages": [router()]}]
    assert "stage_id repeated: 'router'" in problems(body(same_stage))[0][1]
    flat_too = body(stages=[router()])
    assert "both in mipro.stages and in mipro.modules" in problems(flat_too)[0][1]
    [(field, message, _)] = problems(body([{"module_id": "a"}]))
    assert field == "prompt_learning.mipro.modules.0" and "declares no stages" in message
    wrong = [{"module_id": "a", "stages": [router(module_id="b")]}]
    assert "sets module_id 'b' inside module 'a'" in problems(body(wrong))[0][1]


def test_flat_stages_with_one_id_twice_are_refused() -> None:
    doc = body(modules=[])
    doc["mipro"].pop("modules")
    doc["mipro"]["stages"] = [router(), router()]
    assert "stage_id repeated: 'router'" in problems(doc)[0][1]


def test_a_stage_baseline_is_checked_against_its_baseline_messages_else_the_initial_prompt() -> None:
    moved = classifier()
    moved["baseline_messages"][0]["pattern"] = "Some other system text."
    moved["baseline_instruction"] = CLASSIFIER_SYSTEM
    [(field, message, _)] = problems(body([{"module_id": "a", "stages": [router(), moved]}]))
    assert field == "prompt_learning" and "mipro.modules[0].stages[1].baseline_instruction" in message
    assert "its baseline_messages" in message
    lost = {"stage_id": "classifier", "baseline_instruction": CLASSIFIER_SYSTEM}
    [(_, message, _)] = problems(body([{"module_id": "a", "stages": [router(), lost]}]))
    assert "stages[1].baseline_instruction is not found in any initial_prompt message" in message


def test_baseline_messages_without_the_stages_role_need_a_baseline_instruction() -> None:
    stage = {"stage_id": "classifier", "baseline_messages": [{"role": "user", "content": CLASSIFIER_USER}]}
    [(field, message, _)] = problems(body([{"module_id": "a", "stages": [router(), stage]}]))
    assert field == "prompt_learning.mipro.modules.0.stages.1" and "no 'system' message" in message
    stage["role"] = "user"
    stage["baseline_instruction"] = "Classify this query"
    assert parse(body([{"module_id": "a", "stages": [router(), stage]}])).stages()[1].role == "user"


def test_find_cycle() -> None:
    assert find_cycle([("a", "b"), ("b", "c")]) is None
    assert find_cycle([("a", "b"), ("b", "c"), ("c", "b")]) == ["b", "c", "b"]
    assert find_cycle([]) is None
