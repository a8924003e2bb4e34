"""The datasets `benchmarks/vs_dspy.py` can run on: their rows, labels, task app, config and DSPy instruction.

Seeds are row indices into `train` for both: banking77's app maps seed N to train.csv row N (`seed % len`),
CLINC150's app maps seed N to row N of its train split in the loader's fixed shuffled order, which is the
order of `Clinc150Data.split("train")`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mipro.taskapps.banking77.app import create_app as create_banking77
from mipro.taskapps.banking77.data import load_banking77
from mipro.taskapps.clinc150.app import create_app as create_clinc150
from mipro.taskapps.clinc150.data import load_clinc150
from mipro.taskapps.rows import Row

REPO = Path(__file__).resolve().parents[1]
DatasetName = Literal["banking77", "clinc150"]
DATASETS: tuple[DatasetName, ...] = ("banking77", "clinc150")
BANKING77_DIR = Path(
    os.environ.get("BANKING77_DATA_DIR") or REPO.parent / "shared" / "datasets" / "banking77"
)
BANKING77_INSTRUCTION = "Classify the customer banking query into exactly one intent label."
CLINC150_INSTRUCTION = "Classify the virtual-assistant request into exactly one intent label."


@dataclass(frozen=True)
class BenchTask:
    """One dataset as the benchmark uses it: `train[seed]` is the row the task app serves for `seed`."""

    name: DatasetName
    title: str
    labels: list[str]
    train: list[Row]
    source: str
    config: Path
    dspy_instruction: str
    make_app: Callable[[str], Any]  # api key -> the task app (ASGI)


def load_task(name: DatasetName) -> BenchTask:
    """The dataset `name`, read from the shared datasets directory (or its *_DATA_DIR variable)."""
    if name == "banking77":
        b77 = load_banking77(BANKING77_DIR)
        return BenchTask(
            name=name,
            title="Banking77",
            labels=b77.labels,
            train=b77.train,
            source=b77.source,
            config=REPO / "configs" / "banking77.toml",
            dspy_instruction=BANKING77_INSTRUCTION,
            make_app=lambda key: create_banking77(b77, api_key=key),
        )
    clinc = load_clinc150()
    return BenchTask(
        name=name,
        title="CLINC150",
        labels=clinc.labels,
        train=clinc.split("train"),
        source=clinc.source,
        config=REPO / "configs" / "clinc150.toml",
        dspy_instruction=CLINC150_INSTRUCTION,
        make_app=lambda key: create_clinc150(clinc, api_key=key),
    )


def output_stem(dataset: DatasetName, profile: str) -> str:
    """The results files' name: `vs_dspy` for the default run, `vs_dspy_<dataset>_<profile>` otherwise."""
    if dataset == "banking77" and profile == "default":
        return "vs_dspy"
    return f"vs_dspy_{dataset}_{profile}"
