"""Where the example task apps find their data (one rule for the apps, `mipro demo` and `mipro stack`), and
how loudly banking77 says it fell back to its 12-intent set: the real `python -m mipro.taskapps.<app>`
command lines, asked over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from mipro.starter.stack import banking77_data_dir
from mipro.taskapps import datasets
from mipro.taskapps.banking77 import data as banking77_data
from mipro.taskapps.clinc150 import data as clinc150_data
from tests.unit.taskapp_process import app_env, running_app

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "datasets"
BANKING77_FILES = ("train.csv", "test.csv", "categories.json")


@pytest.fixture
def no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BANKING77_DATA_DIR", "CLINC150_DATA_DIR", "MIPRO_DATASETS_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_the_shared_copy_is_found_beside_the_checkout(no_data_env: None) -> None:
    assert datasets.CHECKOUT_SHARED_DATASETS == SHARED
    assert banking77_data.find_data_dir() == SHARED / "banking77"
    assert banking77_data_dir() == SHARED / "banking77"  # the demo's and the stack's rule is the app's
    assert clinc150_data.default_dir() == SHARED / "clinc150"


def test_the_env_var_wins_and_an_incomplete_shared_copy_is_not_used(
    no_data_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BANKING77_DATA_DIR", str(tmp_path / "mine"))
    assert banking77_data.find_data_dir() == banking77_data_dir() == tmp_path / "mine"
    monkeypatch.delenv("BANKING77_DATA_DIR")
    monkeypatch.setenv("MIPRO_DATASETS_DIR", str(tmp_path))
    (tmp_path / "banking77").mkdir()
    (tmp_path / "banking77" / "train.csv").write_text("text,category\n")
    assert banking77_data.find_data_dir() is None and banking77_data_dir() is None
    assert clinc150_data.default_dir() == tmp_path / "clinc150"  # where the loader says it looked
    with pytest.raises(FileNotFoundError, match=r"CLINC150_DATA_DIR.*MIPRO_DATASETS_DIR"):
        clinc150_data.load_clinc150()


def test_fallback_warning_names_what_to_set() -> None:
    warning = banking77_data.fallback_warning(banking77_data.load_fallback())
    assert warning is not None and "NOT Banking77" in warning and "12 intents" in warning
    assert "BANKING77_DATA_DIR" in warning and str(SHARED / "banking77") in warning
    assert banking77_data.fallback_warning(banking77_data.load_banking77(SHARED / "banking77")) is None


def test_banking77_cli_serves_the_shared_copy(tmp_path: Path) -> None:
    """No --data-dir, env var, cache or download, started elsewhere: the shared copy, and no warning."""
    with running_app("banking77", ["--no-download"], app_env(tmp_path), cwd=tmp_path) as app:
        assert app.url, app.startup_text
        health = httpx.get(f"{app.url}/health", timeout=10).json()
        taskset = httpx.get(f"{app.url}/task_info", timeout=10).json()["taskset"]
    assert health["data_source"] == f"dir:{SHARED / 'banking77'}"
    assert taskset["data_source"] == health["data_source"] and taskset["num_labels"] == 77
    assert not [w for w in app.warnings() if "fallback" in w]


def test_banking77_cli_says_loudly_that_it_fell_back(tmp_path: Path) -> None:
    env = app_env(tmp_path, MIPRO_DATASETS_DIR=str(tmp_path / "no-datasets"))
    with running_app("banking77", ["--no-download"], env, cwd=tmp_path) as app:
        assert app.url, app.startup_text
        health = httpx.get(f"{app.url}/health", timeout=10).json()
        taskset = httpx.get(f"{app.url}/task_info", timeout=10).json()["taskset"]
    [warning] = [w for w in app.warnings() if "fallback" in w]
    assert "NOT Banking77" in warning and "BANKING77_DATA_DIR" in warning
    assert str(tmp_path / "no-datasets" / "banking77") in warning  # the path it would have read
    assert health["data_source"].startswith("fallback") and "NOT Banking77" in health["data_source"]
    assert taskset["data_source"] == health["data_source"] and taskset["num_labels"] == 12


def test_banking77_cli_takes_the_env_var(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    for name in BANKING77_FILES:
        (mine / name).write_text((SHARED / "banking77" / name).read_text(encoding="utf-8"), encoding="utf-8")
    env = app_env(tmp_path, BANKING77_DATA_DIR=str(mine), MIPRO_DATASETS_DIR=str(tmp_path / "none"))
    with running_app("banking77", ["--no-download"], env, cwd=tmp_path) as app:
        assert app.url, app.startup_text
        health = httpx.get(f"{app.url}/health", timeout=10).json()
    assert health["data_source"] == f"dir:{mine}"


def test_clinc150_cli_serves_the_shared_copy(tmp_path: Path) -> None:
    with running_app("clinc150", [], app_env(tmp_path), cwd=tmp_path) as app:
        assert app.url, app.startup_text
        health = httpx.get(f"{app.url}/health", timeout=10).json()
        taskset = httpx.get(f"{app.url}/task_info", timeout=10).json()["taskset"]
    assert health["data_source"] == f"dir:{SHARED / 'clinc150'}" == taskset["data_source"]


def test_clinc150_cli_without_data_is_one_error_line(tmp_path: Path) -> None:
    env = app_env(tmp_path, MIPRO_DATASETS_DIR=str(tmp_path / "no-datasets"))
    with running_app("clinc150", [], env, cwd=tmp_path) as app:
        assert app.url is None
        assert app.proc.wait(30) == 2
    line = [line for line in app.startup if line.strip()][-1]
    assert line.startswith("error: clinc150 data not found") and "CLINC150_DATA_DIR" in line
    assert "Traceback" not in app.startup_text


def test_clinc150_cli_takes_the_env_var(tmp_path: Path) -> None:
    doc = {"train": [["wake me at 7", "alarm"]], "val": [], "test": [["hi", "greeting"]]}
    (tmp_path / "data_full.json").write_text(json.dumps(doc))
    env = app_env(tmp_path, CLINC150_DATA_DIR=str(tmp_path), MIPRO_DATASETS_DIR=str(tmp_path / "none"))
    with running_app("clinc150", [], env, cwd=tmp_path) as app:
        assert app.url, app.startup_text
        health = httpx.get(f"{app.url}/health", timeout=10).json()
    assert health["data_source"] == f"dir:{tmp_path}"
