"""Where the example task apps find their data: the one rule used by `python -m mipro.taskapps.<app>`,
`mipro demo` and `mipro stack`.

For a dataset `<name>` (banking77, clinc150): the env var `<NAME>_DATA_DIR` when set (an explicit choice:
the app's loader refuses it if it lacks the files), else `<name>/` under the shared datasets directory, which
is `MIPRO_DATASETS_DIR` when set, else `../shared/datasets` beside this checkout. The shared copy is used only
when it holds the files the app needs; otherwise there is no directory and the app's loader decides
(banking77: cache, download, then its small built-in fallback set; clinc150: an error naming where it looked).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

# mipro/taskapps/datasets.py -> parents[2] is the checkout; its parent holds shared/datasets.
CHECKOUT_SHARED_DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
DATASETS_ENV = "MIPRO_DATASETS_DIR"


def data_dir_env(name: str) -> str:
    """The env var naming a dataset's directory: `BANKING77_DATA_DIR` for banking77."""
    return f"{name.upper()}_DATA_DIR"


def shared_datasets_dir() -> Path:
    """`MIPRO_DATASETS_DIR`, else ../shared/datasets beside this checkout."""
    root = os.environ.get(DATASETS_ENV)
    return Path(root).expanduser() if root else CHECKOUT_SHARED_DATASETS


def shared_dir(name: str) -> Path:
    """Where the shared copy of dataset `name` is looked for (whether or not it is there)."""
    return shared_datasets_dir() / name


def find_data_dir(name: str, files: Iterable[str]) -> Path | None:
    """`<NAME>_DATA_DIR` when set, else the shared copy when it holds every one of `files`, else None."""
    if env := os.environ.get(data_dir_env(name)):
        return Path(env).expanduser()
    shared = shared_dir(name)
    return shared if all((shared / f).is_file() for f in files) else None


def where_to_put(name: str, files: Iterable[str]) -> str:
    """One sentence for warnings and errors: how to give the app dataset `name`."""
    return (
        f"set {data_dir_env(name)} (or --data-dir) to a directory holding {', '.join(files)}, "
        f"or put them in {shared_dir(name)} (the shared datasets directory; override with {DATASETS_ENV})"
    )
