"""Banking77 data for the example task app.

`load_banking77` tries, in order:
1. an explicit directory (`data_dir`, else env `BANKING77_DATA_DIR`) holding train.csv / test.csv
   (columns `text,category`) and categories.json (the label list, whose order is the label order);
   an explicit directory that lacks those files is an error, never a silent fallback;
2. the download cache (`~/.cache/mipro/banking77`, override with env `MIPRO_CACHE_DIR`);
3. a download from the public PolyAI source into that cache (short timeout);
4. the small built-in fallback set `mipro/taskapps/data/fallback_intents.json` (12 hand-written
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

from mipro.taskapps.rows import Row

__all__ = ["Banking77Data", "Row", "load_banking77"]

log = structlog.get_logger(__name__)

DOWNLOAD_BASE_URL = "https://raw.githubusercontent.com/PolyAI-LDN/task-specific-datasets/master/banking_data"
DATA_FILES = ("train.csv", "test.csv", "categories.json")
FALLBACK_PATH = Path(__file__).resolve().parent.parent / "data" / "fallback_intents.json"
DOWNLOAD_TIMEOUT_S = 10.0


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
    """Load Banking77 from a directory, the cache, a download, or else the built-in fallback set."""
    env_dir = os.environ.get("BANKING77_DATA_DIR")
    explicit = data_dir if data_dir is not None else (Path(env_dir) if env_dir else None)
    if explicit is not None:
        return _log_loaded(read_dir(Path(explicit).expanduser()))
    cache = cache_dir or default_cache_dir()
    if _has_files(cache):
        return _log_loaded(read_dir(cache, source=f"cache:{cache}"))
    if allow_download:
        downloaded = _try_download(cache)
        if downloaded is not None:
            return _log_loaded(downloaded)
    return _log_loaded(load_fallback())
