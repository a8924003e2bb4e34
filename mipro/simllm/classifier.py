"""The policy behaviour of the simulated LLM: a weak but teachable classifier. Pure functions.

Each allowed label L gets the score
    name_weight * overlap(query, L's name) + hint_weight * overlap(query, hint words of L)
    + demo_weight * max Jaccard(query, demo queries labelled L)
and the best label wins (ties broken by a hash). Then, with a deterministic chance that falls with the
first few demos or hinted labels (zero-shot confusion) and grows with the prompt's length past the knee
and with the number of demos past `demo_knee` (distraction), the model answers the 2nd-best label or the
label of a random demo instead. Nothing here knows any dataset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mipro.simllm.prompt import PromptView
from mipro.simllm.settings import SimLLMSettings
from mipro.simllm.text import content_stems, label_stems, stable_hash, unit

NAME_FRACTION_BONUS = 0.5


@dataclass(frozen=True)
class Decision:
    """The label answered, and why (for logs and tests)."""

    label: str
    best: str
    distracted: bool
    distraction_chance: float


def request_key(body: dict[str, Any], seed: int) -> str:
    """A stable key of a whole request (messages, tools, seed, temperature): for ids and faults."""
    payload = {"m": body.get("messages"), "t": body.get("tools"), "s": seed, "T": temperature_of(body)}
    return f"{stable_hash(json.dumps(payload, sort_keys=True, default=str)):016x}"


def roll_key(query: str, seed: int, temperature: float) -> str:
    """The key of the model's dice for a query: ties, distraction. The temperature is a salt.

    It depends on the query, not on the rest of the prompt, so two prompts are compared on the same
    dice (a prompt change flips an answer only through the scores or the distraction chance).
    """
    return f"{stable_hash(query.strip(), seed, round(temperature, 3)):016x}"


def temperature_of(body: dict[str, Any]) -> float:
    """The request's temperature (0 when absent or invalid), rounded to 3 decimals."""
    try:
        return round(float(body.get("temperature") or 0.0), 3)
    except (TypeError, ValueError):
        return 0.0


def _name_score(query: frozenset[str], label: str) -> float:
    stems = label_stems(label)
    hits = len(query & stems)
    return hits + NAME_FRACTION_BONUS * hits / len(stems) if stems else 0.0


def _hint_score(query: frozenset[str], hints: frozenset[str], df: dict[str, int]) -> float:
    return sum(1.0 / df.get(w, 1) for w in query & hints)


def _similarity(a: frozenset[str], b: frozenset[str], df: dict[str, int]) -> float:
    """Jaccard weighted by 1/df: sharing a word that names many labels is weak evidence."""
    union = sum(1.0 / df.get(w, 1) for w in a | b)
    return sum(1.0 / df.get(w, 1) for w in a & b) / union if union else 0.0


def _demo_score(query: frozenset[str], demo_queries: list[frozenset[str]], df: dict[str, int]) -> float:
    return max((_similarity(query, d, df) for d in demo_queries), default=0.0)


def score_labels(view: PromptView, settings: SimLLMSettings) -> dict[str, float]:
    """The score of every allowed label for the view's query."""
    query = content_stems(view.query)
    canonical = {x.lower(): x for x in view.labels}
    by_label: dict[str, list[frozenset[str]]] = {}
    for demo in view.demos:
        label = canonical.get(demo.label.lower())
        if label is not None:
            by_label.setdefault(label, []).append(content_stems(demo.query))
    df: dict[str, int] = {}
    for label in view.labels:
        for w in view.hints.get(label, frozenset()) | label_stems(label):
            df[w] = df.get(w, 0) + 1
    return {
        label: settings.name_weight * _name_score(query, label)
        + settings.hint_weight * _hint_score(query, view.hints.get(label, frozenset()), df)
        + settings.demo_weight * _demo_score(query, by_label.get(label, []), df)
        for label in view.labels
    }


def rank_labels(scores: dict[str, float], key: str) -> list[str]:
    """Labels by descending score; ties broken by a hash of (label, request key)."""
    return sorted(scores, key=lambda label: (-scores[label], stable_hash(label, key)))


def distraction_chance(view: PromptView, settings: SimLLMSettings) -> float:
    """The chance of not answering the best label: zero-shot confusion plus context distraction."""
    demos = len(view.demos)
    understanding = (demos + len(view.hints) / settings.hints_per_demo) / settings.confusion_demos
    confusion = settings.zero_shot_confusion * max(0.0, 1.0 - understanding)
    overflow = max(0, view.chars - settings.context_knee_chars) / settings.context_knee_chars
    crowd = max(0, demos - settings.demo_knee)
    chance = confusion + settings.length_distraction * overflow + settings.demo_distraction * crowd
    return min(settings.max_distraction, chance)


def _distractor(view: PromptView, ranked: list[str], key: str) -> str:
    labels = [d.label for d in view.demos if d.label in view.labels]
    if labels and unit(key, "demo-or-second") < 0.5:
        return labels[int(unit(key, "which-demo") * len(labels))]
    return ranked[1] if len(ranked) > 1 else ranked[0]


def decide(view: PromptView, settings: SimLLMSettings, key: str) -> Decision | None:
    """The label the simulated model answers, or None when the prompt names no labels at all."""
    if not view.labels:
        return None
    ranked = rank_labels(score_labels(view, settings), key)
    chance = distraction_chance(view, settings)
    distracted = unit(key, "distract") < chance
    label = _distractor(view, ranked, key) if distracted else ranked[0]
    return Decision(label=label, best=ranked[0], distracted=distracted, distraction_chance=chance)
