"""The simulated LLM's "hard" profile: each property that makes it harder, against the default profile.

Pure functions on real Banking77 rows (the task app's own prompt), no servers: label hints in the
instruction matter much more, repeated demo labels teach nothing, demo order changes answers, and the
model's ceiling is far above what the baseline or a random demo set reaches. The default profile is
checked to stay as it was.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from mipro.simllm.__main__ import parse_args, settings_from
from mipro.simllm.classifier import decide, distraction_chance, roll_key
from mipro.simllm.meta import ProposalRequest, propose_from
from mipro.simllm.prompt import Demo, PromptView, read_prompt
from mipro.simllm.settings import HARD_PROFILE, SimLLMSettings
from mipro.taskapps.banking77.data import Banking77Data, load_banking77
from mipro.taskapps.banking77.prompts import SYSTEM_PATTERN, build_messages

BANKING77_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "banking77"
DEFAULT, HARD = SimLLMSettings(), SimLLMSettings(profile="hard")
Rows = list[tuple[str, str]]


@pytest.fixture(scope="module")
def data() -> Banking77Data:
    return load_banking77(BANKING77_DIR)


@pytest.fixture(scope="module")
def rows(data: Banking77Data) -> dict[str, Rows]:
    """Scattered disjoint pools of train rows (the file is grouped by label)."""
    order = list(range(len(data.train)))
    random.Random(0).shuffle(order)
    pick = lambda a, b: [(data.train[i].text, data.train[i].label) for i in order[a:b]]  # noqa: E731
    return {"train": pick(0, 100), "eval": pick(400, 650)}


def messages(data: Banking77Data, query: str, demos: Rows, instruction: str | None) -> list[dict[str, Any]]:
    """The banking77 app's messages, the instruction in place of the baseline, demos before the query."""
    system, final = build_messages(query, data.labels)
    if instruction is not None:
        system = {"role": "system", "content": system["content"].replace(SYSTEM_PATTERN, instruction)}
    turns: list[dict[str, Any]] = []
    for text, label in demos:
        turns += [build_messages(text, data.labels)[1], {"role": "assistant", "content": f"Intent: {label}"}]
    return [system, *turns, final]


def answers(
    settings: SimLLMSettings, data: Banking77Data, demos: Rows, instruction: str | None, rows: Rows
) -> list[str]:
    out = []
    for query, _ in rows:
        view = read_prompt(messages(data, query, demos, instruction))
        decision = decide(view, settings, roll_key(view.query, settings.seed, 0.0))
        out.append(decision.label if decision else "")
    return out


def accuracy(
    settings: SimLLMSettings, data: Banking77Data, demos: Rows, instruction: str | None, rows: Rows
) -> float:
    said = answers(settings, data, demos, instruction, rows)
    return sum(a == gold for a, (_, gold) in zip(said, rows, strict=True)) / len(rows)


def bootstrapped(settings: SimLLMSettings, data: Banking77Data, rows: Rows) -> Rows:
    """The rows the baseline prompt answers right: what bootstrapping would keep as demos."""
    return [row for row in rows if answers(settings, data, [], None, [row]) == [row[1]]]


def distinct_labels(rows: Rows, n: int) -> Rows:
    out: Rows = []
    for row in rows:
        if row[1] not in {label for _, label in out}:
            out.append(row)
    return out[:n]


def hinted_instruction(examples: Rows) -> str:
    """What the simulated meta-model proposes when grounded in `examples`: rules for some of their labels."""
    request = ProposalRequest(
        basic=SYSTEM_PATTERN, task="", examples=examples, history=[], tip="none", index=1
    )
    return propose_from(request, 1.0)


def test_default_profile_is_the_previous_behaviour() -> None:
    assert SimLLMSettings(profile="default") == DEFAULT
    assert (DEFAULT.zero_shot_confusion, DEFAULT.confusion_demos, DEFAULT.hints_per_demo) == (0.45, 3, 6.0)
    assert DEFAULT.hint_weight == 2.0 and not DEFAULT.distinct_demo_labels and DEFAULT.demo_recency == 0.0
    for name, value in HARD_PROFILE.items():
        assert getattr(HARD, name) == value != getattr(DEFAULT, name)


def test_profile_from_env_flag_and_explicit_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMLLM_PROFILE", "hard")
    assert SimLLMSettings.from_env() == HARD
    assert SimLLMSettings.from_env(demo_recency=0.5).demo_recency == 0.5  # explicit beats the profile
    monkeypatch.delenv("SIMLLM_PROFILE")
    assert settings_from(parse_args(["--profile", "hard"])) == HARD
    assert settings_from(parse_args([])) == DEFAULT
    with pytest.raises(ValueError):
        SimLLMSettings(profile="harder")  # type: ignore[arg-type]


def test_instruction_hints_matter_much_more_under_hard(data: Banking77Data, rows: dict[str, Rows]) -> None:
    gains = {}
    for name, settings in {"default": DEFAULT, "hard": HARD}.items():
        boot = bootstrapped(settings, data, rows["train"])
        instruction, demos = hinted_instruction(boot[:12]), distinct_labels(boot[12:], 4)
        assert len(read_prompt(messages(data, "x", [], instruction)).hints) >= 3  # it does state hints
        with_hints = accuracy(settings, data, demos, instruction, rows["eval"])
        gains[name] = with_hints - accuracy(settings, data, demos, None, rows["eval"])
    assert gains["hard"] > 0.04 and gains["hard"] > gains["default"] + 0.04, gains


def test_repeated_demo_labels_teach_nothing_more_under_hard() -> None:
    labels = ("card_arrival", "exchange_rate", "lost_or_stolen_card", "terminate_account")
    same = PromptView(labels, "q", tuple(Demo(f"query {i}", labels[0]) for i in range(4)))
    distinct = PromptView(labels, "q", tuple(Demo(f"query {i}", label) for i, label in enumerate(labels)))
    one = PromptView(labels, "q", same.demos[:1])
    assert distraction_chance(same, DEFAULT) == distraction_chance(distinct, DEFAULT)
    assert (
        distraction_chance(same, HARD) == distraction_chance(one, HARD) > distraction_chance(distinct, HARD)
    )


def test_demo_order_changes_answers_under_hard_only(data: Banking77Data, rows: dict[str, Rows]) -> None:
    demos = distinct_labels(rows["train"], 4)
    changed = {}
    for name, settings in {"default": DEFAULT, "hard": HARD}.items():
        calm = settings.model_copy(update={"zero_shot_confusion": 0.0})  # the scores alone decide
        for label, mode in (("scores", calm), ("distracted", settings)):
            forward = answers(mode, data, demos, None, rows["eval"])
            backward = answers(mode, data, demos[::-1], None, rows["eval"])
            changed[f"{name} {label}"] = sum(a != b for a, b in zip(forward, backward, strict=True))
    assert changed["default scores"] == 0 and changed["hard scores"] >= 3, changed
    assert changed["hard distracted"] > changed["default distracted"], changed


def test_ceiling_far_above_baseline_and_random_demos_under_hard(
    data: Banking77Data, rows: dict[str, Rows]
) -> None:
    """Ceiling: the best prompt's answers without any confusion. Under default a random demo set is within
    0.03 of it (the ceiling binds); under hard a random demo set is far below it, and only an instruction
    stating hints with distinct demos reaches it."""
    gaps = {}
    for name, settings in {"default": DEFAULT, "hard": HARD}.items():
        boot = bootstrapped(settings, data, rows["train"])
        instruction, demos = hinted_instruction(boot[:12]), distinct_labels(boot[12:], 4)
        calm = settings.model_copy(update={"zero_shot_confusion": 0.0})
        ceiling = accuracy(calm, data, demos, instruction, rows["eval"])
        random_demos = random.Random(1).sample(rows["train"], 3)
        gaps[name] = {
            "baseline": ceiling - accuracy(settings, data, [], None, rows["eval"]),
            "random demos": ceiling - accuracy(settings, data, random_demos, None, rows["eval"]),
            "best prompt": ceiling - accuracy(settings, data, demos, instruction, rows["eval"]),
        }
    assert gaps["default"]["random demos"] < 0.03, gaps
    assert gaps["hard"]["baseline"] > 0.10 and gaps["hard"]["random demos"] > 0.10, gaps
    assert gaps["hard"]["best prompt"] < 0.03, gaps  # the ceiling is reachable, by the right prompt
