"""A labelled example row, shared by the example task apps' data loaders."""

from __future__ import annotations

from typing import NamedTuple


class Row(NamedTuple):
    text: str
    label: str
