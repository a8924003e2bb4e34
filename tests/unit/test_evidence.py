"""The promotion decision from validation and minibatch evidence together (`mipro.evidence`)."""

from __future__ import annotations

import pytest

from mipro.evidence import MINIBATCH_WEIGHT, THRESHOLD, decide, paired_diffs, posterior, weigh


def scores(hits: int, n: int, first_seed: int = 0) -> dict[int, float]:
    """n seeds from first_seed, the first `hits` of them right."""
    return {first_seed + i: 1.0 if i < hits else 0.0 for i in range(n)}


def validation_only(challenger: dict[int, float], incumbent: dict[int, float]) -> bool:
    """The rule the pooled decision replaces: the higher mean on the shared validation seeds."""
    diffs = paired_diffs(challenger, incumbent)
    return bool(diffs) and sum(diffs) > 0


def test_paired_diffs_use_only_the_seeds_both_scored() -> None:
    assert paired_diffs({1: 1.0, 2: 0.0, 3: 1.0}, {2: 1.0, 3: 1.0, 4: 0.0}) == [-1.0, 0.0]
    assert paired_diffs({1: 1.0}, {2: 1.0}) == []


def test_a_validation_tie_is_broken_by_a_clear_minibatch_lift() -> None:
    # 17 validation rows: both right on 4 (a tie keeps the incumbent under the old rule); on 32 shared
    # minibatch seeds the challenger is right on 14, the incumbent on 5.
    val_c, val_i = scores(4, 17, 100), scores(4, 17, 100)
    mb_c, mb_i = scores(14, 32), scores(5, 32)
    found = decide(val_c, val_i, mb_c, mb_i)
    assert not validation_only(val_c, val_i)
    assert found.promote and found.p_better > 0.9
    assert found.validation.n == 17 and found.validation.mean_diff == 0.0
    assert found.minibatch.n == 32 and found.minibatch.mean_diff == pytest.approx(9 / 32)


def test_a_slightly_worse_small_validation_does_not_outvote_the_minibatches() -> None:
    val_c, val_i = scores(3, 17, 100), scores(4, 17, 100)  # one row behind on validation
    found = decide(val_c, val_i, scores(14, 32), scores(5, 32))
    assert not validation_only(val_c, val_i) and found.promote


def test_a_clearly_worse_validation_keeps_the_incumbent_despite_a_lucky_minibatch() -> None:
    # The leader's minibatch lift is what made it the leader: it counts half, validation decides here.
    found = decide(scores(2, 40, 100), scores(12, 40, 100), scores(11, 16), scores(6, 16))
    assert not found.promote and found.p_better < THRESHOLD
    assert found.minibatch.weight == MINIBATCH_WEIGHT < found.validation.weight


def test_with_validation_only_it_is_the_old_rule() -> None:
    for hits in range(0, 9):
        val_c, val_i = scores(hits, 8), scores(4, 8)
        assert decide(val_c, val_i, {}, {}).promote == validation_only(val_c, val_i)


def test_a_tie_everywhere_and_no_evidence_keep_the_incumbent() -> None:
    tie = decide(scores(4, 10), scores(4, 10), scores(3, 16), scores(3, 16))
    assert tie.p_better == pytest.approx(0.5) and not tie.promote
    nothing = decide({1: 1.0}, {2: 0.0}, {3: 1.0}, {4: 0.0})
    assert nothing.p_better == 0.0 and not nothing.promote and nothing.posterior_mean is None


def test_the_posterior_sharpens_with_seeds_and_never_claims_certainty() -> None:
    few = weigh([1.0, 0.0, 1.0, -1.0], [])
    many = weigh([1.0, 0.0, 1.0, -1.0] * 5, [])
    assert 0.5 < few.p_better < many.p_better < 1.0
    same = weigh([1.0] * 3, [])
    assert same.posterior_sd is not None and same.posterior_sd > 0  # identical differences: the prior spread
    mean, sd = posterior([(1.0, 1.0), (-1.0, 1.0), (1.0, 0.5)]) or (0.0, 0.0)
    assert mean == pytest.approx(0.5 / 2.5) and sd > 0
    assert posterior([]) is None
