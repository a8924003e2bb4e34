"""An example task app started without its API key serves without auth, and says so loudly at startup: a
WARNING line on stderr saying it accepts unauthenticated requests and how to set the key. The real
`python -m mipro.taskapps.<app>` command lines, asked over HTTP on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.unit.taskapp_process import app_env, running_app

APPS = {"banking77": ["--no-download"], "clinc150": []}


@pytest.mark.parametrize("app", sorted(APPS))
def test_an_app_without_its_key_warns_that_it_is_open(app: str, tmp_path: Path) -> None:
    with running_app(app, APPS[app], app_env(tmp_path), cwd=tmp_path) as started:
        assert started.url, started.startup_text
        health = httpx.get(f"{started.url}/health", timeout=10)  # no key sent
    assert health.status_code == 200 and health.json()["auth"]["required"] is False
    [warning] = [w for w in started.warnings() if "ENVIRONMENT_API_KEY" in w]
    assert warning.startswith("WARNING: ENVIRONMENT_API_KEY is not set")
    assert "UNAUTHENTICATED" in warning and f"this {app} task app" in warning
    assert "export ENVIRONMENT_API_KEY=" in warning and "--api-key-env" in warning


def test_the_warning_names_the_variable_the_app_reads(tmp_path: Path) -> None:
    args = ["--no-download", "--api-key-env", "MY_APP_KEY"]
    with running_app("banking77", args, app_env(tmp_path), cwd=tmp_path) as started:
        assert started.url, started.startup_text
    [warning] = [w for w in started.warnings() if "UNAUTHENTICATED" in w]
    assert warning.startswith("WARNING: MY_APP_KEY is not set") and "export MY_APP_KEY=" in warning


@pytest.mark.parametrize("app", sorted(APPS))
def test_an_app_with_its_key_neither_warns_nor_serves_open(app: str, tmp_path: Path) -> None:
    env = app_env(tmp_path, ENVIRONMENT_API_KEY="sk_env_warning_test")
    with running_app(app, APPS[app], env, cwd=tmp_path) as started:
        assert started.url, started.startup_text
        refused = httpx.get(f"{started.url}/health", timeout=10)
        allowed = httpx.get(f"{started.url}/health", headers={"X-API-Key": "sk_env_warning_test"}, timeout=10)
    assert refused.status_code >= 400 and allowed.json()["auth"]["required"] is True
    assert not [w for w in started.warnings() if "UNAUTHENTICATED" in w or "API_KEY" in w]
