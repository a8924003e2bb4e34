"""The policy behaviour of the simulated LLM: a weak but teachable classifier. Pure functions.

Each allowed label L gets the score
    name_weight * overlap(query, L's name) + hint_weight * overlap(query, hint words of L)
    + demo_weight * max Jaccard(query, demo queries labelled L)
and the best label wins (ties broken by a hash). Then, with a deterministic chance that falls with the
first few demos or hinted labels (zero-shot confusion) and grows with the prompt's length past the knee
and with the number of demos past `demo_knee` (distraction), the model answers the 2nd-best label or the
label of a random demo instead. Nothing here knows any dataset.

The "hard" profile (`SimLLMSettings(profile="hard")`, `settings.HARD_PROFILE`) keeps these mechanics and
changes what it takes to reach the model's ceiling:
- Understanding comes slower: zero-shot confusion 0.6 (not 0.45) clears only after 8 units of
  understanding (not 3). A demo is one unit, and so is a label the instruction states hints for (not
  1/6): label hints, which only some instructions state (the baseline states none; a proposed
  instruction states rules for some of the labels of the examples it was grounded in), are what
  separates a good prompt from a random demo set. Hints also weigh more in the scores (3, not 2).
- Which demos matters: demos repeating a label already shown count no further unit
  (`distinct_demo_labels`), so a set of 4 demos over 2 labels is worth a set of 2.
- Demo order matters (`demo_recency`): the demo at position i of n weighs
  1 - demo_recency * (n - 1 - i) / (n - 1) in the demo score (the last demo 1, the first 1/4), and a
  distracted answer copies a demo's label chosen with the same weights, so reordering the same demos
  changes answers.
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


def _demo_score(
    query: frozenset[str], demo_queries: list[tuple[frozenset[str], float]], df: dict[str, int]
) -> float:
    return max((weight * _similarity(query, d, df) for d, weight in demo_queries), default=0.0)


def position_weights(n: int, recency: float) -> list[float]:
    """The weight of each of n demos by position: 1 for the last, 1 - recency for the first."""
    if n < 2:
        return [1.0] * n
    return [1.0 - recency * (n - 1 - i) / (n - 1) for i in range(n)]


def score_labels(view: PromptView, settings: SimLLMSettings) -> dict[str, float]:
    """The score of every allowed label for the view's query."""
    query = content_stems(view.query)
    canonical = {x.lower(): x for x in view.labels}
    by_label: dict[str, list[tuple[frozenset[str], float]]] = {}
    weights = position_weights(len(view.demos), settings.demo_recency)
    for demo, weight in zip(view.demos, weights, strict=True):
        label = canonical.get(demo.label.lower())
        if label is not None:
            by_label.setdefault(label, []).append((content_stems(demo.query), weight))
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
    taught = len({d.label.lower() for d in view.demos}) if settings.distinct_demo_labels else demos
    understanding = (taught + len(view.hints) / settings.hints_per_demo) / settings.confusion_demos
    confusion = settings.zero_shot_confusion * max(0.0, 1.0 - understanding)
    overflow = max(0, view.chars - settings.context_knee_chars) / settings.context_knee_chars
    crowd = max(0, demos - settings.demo_knee)
    chance = confusion + settings.length_distraction * overflow + settings.demo_distraction * crowd
    return min(settings.max_distraction, chance)


def _pick_weighted(labels: list[str], weights: list[float], u: float) -> str:
    """The label at the point u in [0, 1) of the weights' cumulative sum."""
    target, acc = u * sum(weights), 0.0
    for label, weight in zip(labels, weights, strict=True):
        acc += weight
        if target < acc:
            return label
    return labels[-1]


def _distractor(view: PromptView, ranked: list[str], key: str, recency: float) -> str:
    weights = position_weights(len(view.demos), recency)
    shown = [(d.label, w) for d, w in zip(view.demos, weights, strict=True) if d.label in view.labels]
    labels = [label for label, _ in shown]
    if labels and unit(key, "demo-or-second") < 0.5:
        if recency > 0:
            return _pick_weighted(labels, [w for _, w in shown], unit(key, "which-demo"))
        return labels[int(unit(key, "which-demo") * len(labels))]
    return ranked[1] if len(ranked) > 1 else ranked[0]


def decide(view: PromptView, settings: SimLLMSettings, key: str) -> Decision | None:
    """The label the simulated model answers, or None when the prompt names no labels at all."""
    if not view.labels:
        return None
    ranked = rank_labels(score_labels(view, settings), key)
    chance = distraction_chance(view, settings)
    distracted = unit(key, "distract") < chance
    label = _distractor(view, ranked, key, settings.demo_recency) if distracted else ranked[0]
    return Decision(label=label, best=ranked[0], distracted=distracted, distraction_chance=chance)
