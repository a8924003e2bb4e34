"""Banking77 data for the example task app.

`load_banking77` tries, in order:
1. an explicit directory (`data_dir`, else env `BANKING77_DATA_DIR`) holding train.csv / test.csv
   (columns `text,category`) and categories.json (the label list, whose order is the label order);
   an explicit directory that lacks those files is an error, never a silent fallback;
2. the shared copy, `../shared/datasets/banking77` beside this checkout (or under `MIPRO_DATASETS_DIR`),
   when it holds those files (`find_data_dir`: the same rule `mipro demo` and `mipro stack` use);
3. the download cache (`~/.cache/mipro/banking77`, override with env `MIPRO_CACHE_DIR`);
4. a download from the public PolyAI source into that cache (short timeout);
5. the small built-in fallback set `mipro/taskapps/data/fallback_intents.json` (12 hand-written
   banking-style intents; NOT Banking77), with `source` saying so plainly.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import httpx
import structlog
from pydantic import BaseModel, model_validator

from mipro.taskapps import datasets
from mipro.taskapps.rows import Row

__all__ = ["Banking77Data", "Row", "find_data_dir", "load_banking77"]

log = structlog.get_logger(__name__)

DOWNLOAD_BASE_URL = "https://raw.githubusercontent.com/PolyAI-LDN/task-specific-datasets/master/banking_data"
DATA_FILES = ("train.csv", "test.csv", "categories.json")
FALLBACK_PATH = Path(__file__).resolve().parent.parent / "data" / "fallback_intents.json"
DOWNLOAD_TIMEOUT_S = 10.0
NAME = "banking77"
DATA_DIR_ENV = datasets.data_dir_env(NAME)  # BANKING77_DATA_DIR


class Banking77Data(BaseModel):
    """Labels (in label order), train/test rows of (text, label), and where the data came from."""

    labels: list[str]
    train: list[Row]
    test: list[Row]
    source: str

    @model_validator(mode="after")
    def _labels_known(self) -> Banking77Data:
        known = set(self.labels)
        for split, rows in (("train", self.train), ("test", self.test)):
            unknown = {row.label for row in rows} - known
            if unknown:
                raise ValueError(f"{split} rows use labels not in the label list: {sorted(unknown)[:5]}")
        return self

    @property
    def is_fallback(self) -> bool:
        return self.source.startswith("fallback")

    def split(self, name: str) -> list[Row]:
        if name == "train":
            return self.train
        if name == "test":
            return self.test
        raise KeyError(f"unknown split {name!r}; available: train, test")


def find_data_dir() -> Path | None:
    """`BANKING77_DATA_DIR`, else the shared copy beside this checkout when it holds the files, else None."""
    return datasets.find_data_dir(NAME, DATA_FILES)


def fallback_warning(data: Banking77Data) -> str | None:
    """What an app serving `data` must say at startup when it is the built-in fallback set (else None)."""
    if not data.is_fallback:
        return None
    return (
        f"banking77 is serving its small built-in fallback set ({len(data.labels)} intents), NOT Banking77: "
        f"found no data directory, cache or download. Scores on it say nothing about Banking77. To serve "
        f"the real data, {datasets.where_to_put(NAME, DATA_FILES)}."
    )


def default_cache_dir() -> Path:
    root = os.environ.get("MIPRO_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "mipro"
    return base / "banking77"


def _parse_csv(text: str, name: str) -> list[Row]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None or not {"text", "category"} <= set(reader.fieldnames):
        raise ValueError(f"{name}: expected columns text,category, got {reader.fieldnames}")
    return [Row(text=r["text"].strip(), label=r["category"].strip()) for r in reader]


def _parse_files(files: dict[str, str], source: str) -> Banking77Data:
    labels = json.loads(files["categories.json"])
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValueError("categories.json must be a JSON list of label strings")
    return Banking77Data(
        labels=labels,
        train=_parse_csv(files["train.csv"], "train.csv"),
        test=_parse_csv(files["test.csv"], "test.csv"),
        source=source,
    )


def _has_files(directory: Path) -> bool:
    return all((directory / name).is_file() for name in DATA_FILES)


def read_dir(directory: Path, source: str | None = None) -> Banking77Data:
    """Read train.csv, test.csv and categories.json from a directory."""
    missing = [name for name in DATA_FILES if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"banking77 data dir {directory} lacks {', '.join(missing)}")
    files = {name: (directory / name).read_text(encoding="utf-8") for name in DATA_FILES}
    return _parse_files(files, source or f"dir:{directory}")


def download(cache_dir: Path, base_url: str | None = None, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Fetch the three files from the public source, check they parse, then write them into `cache_dir`."""
    base = (base_url or DOWNLOAD_BASE_URL).rstrip("/")
    with httpx.Client(timeout=timeout, follow_redirects=True) as client:
        files = {}
        for name in DATA_FILES:
            response = client.get(f"{base}/{name}")
            response.raise_for_status()
            files[name] = response.text
    _parse_files(files, "download-check")
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        tmp = cache_dir / f".{name}.part"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(cache_dir / name)
    return cache_dir


def load_fallback() -> Banking77Data:
    """The small built-in labelled intent set shipped with the project (not Banking77)."""
    doc = json.loads(FALLBACK_PATH.read_text(encoding="utf-8"))
    return Banking77Data(
        labels=doc["labels"],
        train=[Row(r["text"], r["label"]) for r in doc["train"]],
        test=[Row(r["text"], r["label"]) for r in doc["test"]],
        source=(
            f"fallback: small built-in intent set ({len(doc['labels'])} intents), NOT Banking77 "
            f"({FALLBACK_PATH.name})"
        ),
    )


def _log_loaded(data: Banking77Data) -> Banking77Data:
    log.info(
        "banking77.data_loaded",
        source=data.source,
        labels=len(data.labels),
        train=len(data.train),
        test=len(data.test),
    )
    if data.is_fallback:
        log.warning("banking77.using_fallback_data", source=data.source)
    return data


def _try_download(cache_dir: Path) -> Banking77Data | None:
    try:
        download(cache_dir)
    except (httpx.HTTPError, OSError, ValueError) as exc:
        log.warning("banking77.download_failed", url=DOWNLOAD_BASE_URL, error=f"{type(exc).__name__}: {exc}")
        return None
    return read_dir(cache_dir, source=f"download:{DOWNLOAD_BASE_URL} (cached in {cache_dir})")


def load_banking77(
    data_dir: Path | None = None, *, cache_dir: Path | None = None, allow_download: bool = True
) -> Banking77Data:
    """Load Banking77 from a directory (`data_dir`, else `find_data_dir()`), the cache, a download, or else
    the built-in fallback set."""
    directory = data_dir if data_dir is not None else find_data_dir()
    if directory is not None:
        return _log_loaded(read_dir(Path(directory).expanduser()))
    cache = cache_dir or default_cache_dir()
    if _has_files(cache):
        return _log_loaded(read_dir(cache, source=f"cache:{cache}"))
    if allow_download:
        downloaded = _try_download(cache)
        if downloaded is not None:
            return _log_loaded(downloaded)
    return _log_loaded(load_fallback())
