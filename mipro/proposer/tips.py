"""The six proposal tips of DSPy's GroundedProposer (grounded_proposer.py, `TIPS`).

A tip nudges the meta-model towards one style of instruction; MIPRO picks one per proposal.
"""

from __future__ import annotations

TIPS: dict[str, str] = {
    "none": "",
    "creative": "Don't be afraid to be creative when creating the new instruction!",
    "simple": "Keep the instruction clear and concise.",
    "description": "Make sure your instruction is very informative and descriptive.",
    "high_stakes": (
        "The instruction should include a high stakes scenario in which the LM must solve the task!"
    ),
    "persona": 'Include a persona that is relevant to the task in the instruction (ie. "You are a ...")',
}

TIP_NAMES: tuple[str, ...] = tuple(TIPS)


def tip_text(name: str) -> str:
    """The text of a tip; raises KeyError naming the known tips for an unknown name."""
    if name not in TIPS:
        raise KeyError(f"unknown tip {name!r}; known tips: {', '.join(TIP_NAMES)}")
    return TIPS[name]


def tip_name(text: str) -> str:
    """The name of the tip whose text is `text` ("none" when it matches none)."""
    stripped = text.strip()
    return next((name for name, tip in TIPS.items() if tip and tip == stripped), "none")
