"""benchmarks/vs_dspy.py's datasets: seeds are the task apps' rows, DSPy sees the dataset's labels, and only
the default run writes vs_dspy.*."""

from __future__ import annotations

import sys
import typing
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.vs_dspy_tasks import BANKING77_DIR, DATASETS, DatasetName, load_task, output_stem  # noqa: E402
from mipro.taskapps.banking77.data import load_banking77  # noqa: E402
from mipro.taskapps.banking77.rollout import pick_row as banking77_row  # noqa: E402
from mipro.taskapps.clinc150.data import load_clinc150  # noqa: E402
from mipro.taskapps.clinc150.meta import pick_row as clinc150_row  # noqa: E402
from mipro.taskapps.rows import Row  # noqa: E402


def test_only_the_default_run_writes_vs_dspy() -> None:
    stems = {output_stem(d, p) for d in DATASETS for p in ("default", "hard")}
    assert output_stem("banking77", "default") == "vs_dspy" and len(stems) == 4
    assert output_stem("clinc150", "hard") == "vs_dspy_clinc150_hard"


def served_row(name: DatasetName, seed: int) -> Row:
    """The row the dataset's task app serves for a train seed."""
    if name == "banking77":
        return banking77_row(load_banking77(BANKING77_DIR), "train", seed)[1]
    return clinc150_row(load_clinc150(), "train", seed)


@pytest.mark.parametrize("name", DATASETS)
def test_seed_n_is_the_row_the_task_app_serves(name: DatasetName) -> None:
    task = load_task(name)
    assert len(task.labels) == {"banking77": 77, "clinc150": 150}[name]
    assert {row.label for row in task.train} == set(task.labels)
    for seed in (0, 1, 777, len(task.train) - 1):
        assert served_row(name, seed) == task.train[seed]


def test_dspy_signature_uses_the_dataset_labels() -> None:
    pytest.importorskip("dspy")
    from benchmarks.vs_dspy import dspy_program

    task = load_task("clinc150")
    program = dspy_program(task.labels, task.dspy_instruction)
    annotation = program.signature.output_fields["intent"].annotation
    assert list(typing.get_args(annotation)) == task.labels
    assert program.signature.instructions == task.dspy_instruction
