"""Demo-set construction (MIPROv2 step 1), a pure function of the bootstrapped pool and a seed.

As in DSPy, less its labelled-only set (a task app reveals scores, not gold answers): set 0 is empty,
set 1 the first `max_size` demos in pool order, the rest shuffled bootstrapped sets of random size
1..max_size. Duplicate sets are dropped; never more than `max_sets` sets.
"""

from __future__ import annotations

import random

from mipro.types import FewShotExample


def build_demo_sets(pool: list[FewShotExample], max_size: int, max_sets: int, seed: int) -> list[list[int]]:
    """Indices into `pool` for each demo set."""
    sets: list[list[int]] = [[]]
    if not pool or max_size == 0:
        return sets
    rng = random.Random(seed)
    candidates = [list(range(min(max_size, len(pool))))]
    for _ in range(max_sets * 4):
        order = list(range(len(pool)))
        rng.shuffle(order)
        candidates.append(sorted(order[: rng.randint(1, min(max_size, len(pool)))]))
    for candidate in candidates:
        if len(sets) >= max_sets:
            break
        if candidate not in sets:
            sets.append(candidate)
    return sets
