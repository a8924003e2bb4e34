"""CLINC150 data for the example task app (Larson et al. 2019, CC BY 3.0; never copied into this repo).

`load_clinc150` reads `data_full.json` (splits `train`, `val`, `test`, rows `[text, label]`) and
`domains.json` from, in order: the `data_dir` argument, env `CLINC150_DATA_DIR`, else
`../shared/datasets/clinc150` beside this checkout (or under `MIPRO_DATASETS_DIR`; the one rule of
`mipro.taskapps.datasets`, shared with banking77, `mipro demo` and `mipro stack`). Nothing is downloaded
and no copy ships with the project: a missing directory is an error naming where it looked. The
out-of-scope rows (`oos_*`, label `oos`) are left out unless `include_oos`.

The rows of each split are grouped by label in the file, so each split is shuffled once with a fixed seed
(`random.Random("clinc150:<split>")`): seed N is row N of that order, and any contiguous seed range is a
mix of labels. Seeds run from 0 to len(split) - 1 (the app advertises these ranges in /task_info).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import structlog
from pydantic import BaseModel, model_validator

from mipro.taskapps import datasets
from mipro.taskapps.rows import Row

log = structlog.get_logger(__name__)

SPLITS = ("train", "val", "test")
OOS_LABEL = "oos"
NAME = "clinc150"
DATA_DIR_ENV = datasets.data_dir_env(NAME)  # CLINC150_DATA_DIR
SHARED_DIR = datasets.CHECKOUT_SHARED_DATASETS / NAME  # the shared copy beside this checkout
DATA_FILE = "data_full.json"
DOMAINS_FILE = "domains.json"


class Clinc150Data(BaseModel):
    """Labels (sorted), each split's rows in its fixed shuffled order, the label domains, the source."""

    labels: list[str]
    splits: dict[str, list[Row]]
    domains: dict[str, list[str]]
    source: str

    @model_validator(mode="after")
    def _labels_known(self) -> Clinc150Data:
        known = set(self.labels)
        for split, rows in self.splits.items():
            unknown = {row.label for row in rows} - known
            if unknown:
                raise ValueError(f"{split} rows use labels not in the label list: {sorted(unknown)[:5]}")
        return self

    def split(self, name: str) -> list[Row]:
        if name not in self.splits:
            raise KeyError(f"unknown split {name!r}; available: {', '.join(self.splits)}")
        return self.splits[name]

    def seed_ranges(self) -> dict[str, list[int]]:
        """The valid seeds of each split, as inclusive [first, last] ranges."""
        return {name: [0, len(rows) - 1] for name, rows in self.splits.items() if rows}


def default_dir() -> Path:
    """`CLINC150_DATA_DIR`, else the shared copy (../shared/datasets/clinc150 beside this checkout), where
    the loader then reports the data missing if it is not there."""
    return datasets.find_data_dir(NAME, (DATA_FILE,)) or datasets.shared_dir(NAME)


def _rows(raw: object, name: str) -> list[Row]:
    if not isinstance(raw, list) or not all(isinstance(r, list) and len(r) == 2 for r in raw):
        raise ValueError(f"{DATA_FILE}: {name} must be a list of [text, label] pairs")
    return [Row(text=str(text).strip(), label=str(label).strip()) for text, label in raw]


def _shuffled(rows: list[Row], split: str) -> list[Row]:
    order = list(rows)
    random.Random(f"clinc150:{split}").shuffle(order)
    return order


def read_dir(directory: Path, include_oos: bool = False) -> Clinc150Data:
    """Read data_full.json (and domains.json if present) from a directory."""
    path = directory / DATA_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"clinc150 data not found: {path} is missing; {datasets.where_to_put(NAME, (DATA_FILE,))}"
        )
    doc = json.loads(path.read_text(encoding="utf-8"))
    splits: dict[str, list[Row]] = {}
    for split in SPLITS:
        rows = _rows(doc.get(split, []), split)
        if include_oos:
            rows += _rows(doc.get(f"oos_{split}", []), f"oos_{split}")
        splits[split] = _shuffled(rows, split)
    domains_path = directory / DOMAINS_FILE
    domains = json.loads(domains_path.read_text(encoding="utf-8")) if domains_path.is_file() else {}
    labels = sorted({row.label for rows in splits.values() for row in rows})
    return Clinc150Data(labels=labels, splits=splits, domains=domains, source=f"dir:{directory}")


def load_clinc150(data_dir: Path | None = None, *, include_oos: bool = False) -> Clinc150Data:
    """Load CLINC150 from `data_dir`, else `CLINC150_DATA_DIR`, else the shared datasets directory."""
    directory = Path(data_dir).expanduser() if data_dir is not None else default_dir()
    data = read_dir(directory, include_oos=include_oos)
    log.info(
        "clinc150.data_loaded",
        source=data.source,
        labels=len(data.labels),
        **{split: len(rows) for split, rows in data.splits.items()},
    )
    return data
