"""The search's pure decisions (`mipro.search`): leader pick with shrinkage, re-run schedule, TPE inputs."""

from __future__ import annotations

from mipro import search as decide
from mipro.job_models import CandidateSummary
from mipro.types import CandidateChoice


def summary(key: str, lift: float | None, n: int) -> CandidateSummary:
    return CandidateSummary(
        key=key,
        choice=decide.choice_of(key),
        candidate_hash=f"h{key}",
        demo_counts=[0],
        minibatch_score=None,
        minibatch_n=n,
        paired_lift=lift,
    )


def test_a_key_names_its_choice_and_back() -> None:
    choice = CandidateChoice(instruction=[3, 0], demo_set=[1, 2])
    assert decide.choice_of(choice.key) == choice
    assert decide.baseline_choice(2).key == "0:0|0:0"


def test_the_leader_is_the_best_shrunk_lift_not_the_luckiest_minibatch() -> None:
    lucky = summary("1:0", 0.30, 4)  # 0.30 * 4 / (4 + 8) = 0.10
    steady = summary("2:0", 0.20, 32)  # 0.20 * 32 / (32 + 8) = 0.16
    assert decide.leader([lucky, steady], validated=set(), batch_size=16) == steady
    assert decide.leader([lucky, steady], validated={"2:0"}, batch_size=16) == lucky


def test_no_leader_without_a_positive_lift() -> None:
    assert decide.leader([summary("1:0", 0.0, 16), summary("2:0", None, 0)], set(), 16) is None
    assert decide.leader([summary("1:0", -0.1, 16)], set(), 16) is None


def test_equal_shrunk_lifts_pick_by_key_so_replays_agree() -> None:
    a, b = summary("1:0", 0.2, 16), summary("2:0", 0.2, 16)
    assert decide.leader([a, b], set(), 16) == decide.leader([b, a], set(), 16) == b


def test_a_rerun_is_due_when_a_trial_number_of_the_iteration_hits_the_period() -> None:
    assert decide.rerun_due(every=6, first_trial=3, slots=3)  # trials 3,4,5: the 6th is trial 5
    assert not decide.rerun_due(every=6, first_trial=0, slots=3)
    assert not decide.rerun_due(every=0, first_trial=5, slots=3)


def test_tpe_inputs_cover_each_stage_and_skip_unobserved_candidates() -> None:
    assert decide.search_space([["a", "b", "c"], ["d"]], [[[], [0]], [[]]]) == [3, 2, 1, 1]
    baseline = summary("0:0", 0.0, 0)
    history = decide.tpe_history([baseline, summary("1:1", 0.25, 8), summary("2:0", None, 0)], "0:0")
    assert history == [([0, 0], 0.0, 1), ([1, 1], 0.25, 8)]


def test_informative_choices_pair_every_instruction_with_the_full_demo_set() -> None:
    instructions = [["base", "i1", "i2"]]
    demo_sets = [[[], [0, 1, 2], [3]]]
    choices = decide.informative_choices(instructions, demo_sets, untried=lambda c: c.instruction != [1])
    assert [c.key for c in choices] == ["0:1", "2:1"]
    no_demos = decide.informative_choices(instructions, [[[]]], untried=lambda c: True)
    assert [c.key for c in no_demos] == ["0:0", "1:0", "2:0"]


def test_spearman_ranks_with_ties_and_needs_three_pairs() -> None:
    from mipro.results import ranks, spearman

    assert ranks([0.5, 0.1, 0.5, 0.9]) == [2.5, 1.0, 2.5, 4.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert spearman([1, 2], [1, 2]) is None and spearman([1, 1, 1], [1, 2, 3]) is None
    assert abs(spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) - 0.8) < 1e-9
