"""Named configs per org, as JSON files under the API's data dir (`configs/<org>/<name>.json`).

Jobs live in Temporal only; a saved config is a template for starting them, so plain files suffice.
A config is validated before it is saved, and an inline task-app key is removed first.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mipro.api.errors import ApiError, config_error
from mipro.api.models import SavedConfig
from mipro.api.secrets import secret_notices
from mipro.config import parse_config
from mipro.errors import MIPROConfigurationError


class SavedConfigStore:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / "configs"

    def _path(self, org: str, name: str) -> Path:
        return self.root / org / f"{name}.json"  # org and name are checked against safe patterns

    def save(self, org: str, name: str, body: dict[str, Any]) -> SavedConfig:
        notices = secret_notices(body, {}, {})
        try:
            parse_config(body)
        except MIPROConfigurationError as exc:
            raise config_error(exc) from None
        body = _without_inline_key(body)
        saved = SavedConfig(name=name, created_at=datetime.now(UTC), config_body=body)
        path = self._path(org, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(saved.model_dump_json(indent=2))
        os.replace(tmp, path)
        return saved.model_copy(update={"notices": notices})

    def get(self, org: str, name: str) -> SavedConfig:
        path = self._path(org, name)
        if not path.is_file():
            raise ApiError(404, "not_found", f"no saved config {name}", [])
        return SavedConfig.model_validate_json(path.read_text())

    def names(self, org: str) -> list[str]:
        folder = self.root / org
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def _without_inline_key(body: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(body))
    inner = doc.get("prompt_learning", doc)
    if isinstance(inner, dict) and inner.pop("task_app_api_key", None) is not None:
        inner.setdefault("task_app_api_key_env", "ENVIRONMENT_API_KEY")
    return doc
