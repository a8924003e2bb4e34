"""The search's decisions as pure functions: the search space and the TPE's history, the leader to promote
or run again, and the informative first choices. The workflow calls these; unit tests call them directly."""

from __future__ import annotations

from collections.abc import Callable, Collection

from mipro.job_models import CandidateSummary
from mipro.types import CandidateChoice


def baseline_choice(n_stages: int) -> CandidateChoice:
    """Every stage's baseline instruction (index 0) with no demos (demo set 0 is the empty set)."""
    return CandidateChoice(instruction=[0] * n_stages, demo_set=[0] * n_stages)


def choice_of(key: str) -> CandidateChoice:
    """The choice a candidate key (`"i:d|i:d"`, one pair per stage) names."""
    parts = [p.split(":") for p in key.split("|")]
    return CandidateChoice(instruction=[int(a) for a, _ in parts], demo_set=[int(b) for _, b in parts])


def search_space(instructions: list[list[str]], demo_sets: list[list[list[int]]]) -> list[int]:
    """The TPE's categorical space: per stage, the number of instructions and of demo sets."""
    space: list[int] = []
    for texts, sets in zip(instructions, demo_sets, strict=True):
        space += [len(texts), len(sets)]
    return space


def tpe_history(summaries: list[CandidateSummary], baseline_key: str) -> list[tuple[list[int], float, int]]:
    """(params, paired lift, seeds) per observed candidate: what the TPE learns from."""
    return [
        (c.choice.as_params(), c.paired_lift or 0.0, max(1, c.minibatch_n))
        for c in summaries
        if c.minibatch_n > 0 or c.key == baseline_key
    ]


def shrunk_lift(candidate: CandidateSummary, shrink: float) -> float:
    """The paired lift shrunk toward 0 by how few seeds it rests on: n / (n + shrink) of it."""
    n = candidate.minibatch_n
    return (candidate.paired_lift or 0.0) * n / (n + shrink)


def leader(
    summaries: list[CandidateSummary], validated: Collection[str], batch_size: int
) -> CandidateSummary | None:
    """The most promising unvalidated candidate: the best positive paired lift, shrunk by its n (ties: key).

    The shrinkage (half a minibatch) keeps one lucky minibatch from outranking a lift seen on many seeds.
    """
    ranked = [
        c for c in summaries if c.key not in validated and c.paired_lift is not None and c.paired_lift > 0
    ]
    if not ranked:
        return None
    shrink = batch_size / 2
    return max(ranked, key=lambda c: (shrunk_lift(c, shrink), c.key))


def rerun_due(every: int, first_trial: int, slots: int) -> bool:
    """Whether one of the trial numbers `first_trial .. first_trial + slots - 1` is a multiple of `every`
    (counted from 1), i.e. whether this iteration runs the leader again (`reevaluate_every_trials`)."""
    return bool(every) and any((t + 1) % every == 0 for t in range(first_trial, first_trial + slots))


def informative_choices(
    instructions: list[list[str]],
    demo_sets: list[list[list[int]]],
    untried: Callable[[CandidateChoice], bool],
) -> list[CandidateChoice]:
    """Each instruction with the full-size bootstrapped demo set, in every stage, baseline instruction first.

    With only the baseline observed, the TPE's first picks are blind; these tell at once what the demos add
    and which instructions work with them. `untried` drops choices whose prompt was already evaluated.
    """
    full = [min(1, len(sets) - 1) for sets in demo_sets]
    counts = [len(texts) for texts in instructions]
    choices: list[CandidateChoice] = []
    for j in range(max(counts)):
        choice = CandidateChoice(instruction=[min(j, n - 1) for n in counts], demo_set=full)
        if choice not in choices and untried(choice):
            choices.append(choice)
    return choices
