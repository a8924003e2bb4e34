"""Paired minibatches: a seeded shuffle of the online pool cut into blocks of `batch_size`.

Every candidate of an iteration is evaluated on the same block, so candidates are compared on the same
seeds; iteration i uses block i mod the number of blocks.
"""

from __future__ import annotations

import random


def minibatch_blocks(pool: list[int], batch_size: int, seed: int) -> list[list[int]]:
    order = list(pool)
    random.Random(seed).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]
