"""The committed OpenAPI document (docs/openapi.json) is the app's, and its examples are real."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter

from mipro.api import examples
from mipro.api.errors import ErrorBody
from mipro.api.models import (
    CandidatesPage,
    CreateJobRequest,
    EventsPage,
    Health,
    Job,
    JobList,
    JobResult,
    SaveConfigRequest,
    SavedConfig,
    SavedConfigList,
)
from mipro.api.openapi import DOCUMENT, FIX, main, openapi_document, render
from mipro.config import apply_values, parse_config
from mipro.job_models import Event
from mipro.metrics import Metric

BODY_MODELS: list[type[BaseModel]] = [
    CandidatesPage,
    CreateJobRequest,
    ErrorBody,
    EventsPage,
    Health,
    Job,
    JobList,
    JobResult,
    SaveConfigRequest,
    SavedConfig,
    SavedConfigList,
]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document()


def test_the_committed_document_is_the_apps(document: dict[str, Any]) -> None:
    assert DOCUMENT.is_file(), f"{DOCUMENT} is missing: run `{FIX}`"
    assert DOCUMENT.read_text(encoding="utf-8") == render(document), (
        f"{DOCUMENT} differs from the app's OpenAPI document: run `{FIX}` and commit it"
    )


def test_rendering_is_stable(document: dict[str, Any]) -> None:
    text = render(document)
    assert text.endswith("}\n") and json.loads(text) == document
    assert render(json.loads(text)) == text  # key order does not depend on how the dict was built


def test_check_mode_reports_a_stale_document(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "openapi.json"
    stale.write_text("{}\n")
    monkeypatch.setattr("mipro.api.openapi.DOCUMENT", stale)
    assert main(["--check"]) == 1
    assert main(["--write"]) == 0 and main(["--check"]) == 0
    assert stale.read_text(encoding="utf-8") == DOCUMENT.read_text(encoding="utf-8")


def _bodies(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            contents = [("request", op["requestBody"]["content"])] if "requestBody" in op else []
            contents += [(status, r.get("content", {})) for status, r in op["responses"].items()]
            for where, content in contents:
                for media_type, media in content.items():
                    found.append((f"{method.upper()} {path} {where} {media_type}", media))
    return found


def test_every_request_and_response_body_has_an_example(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    missing = []
    for where, media in _bodies(document):
        schema = media.get("schema", {})
        ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
        named = schemas[ref.rsplit("/", 1)[-1]] if ref else {}
        if not ("example" in media or "examples" in media or named.get("examples")):
            missing.append(where)
    assert not missing, f"bodies without an example: {missing}"
    assert len(_bodies(document)) > 60  # every operation was looked at, errors included


@pytest.mark.parametrize("model", BODY_MODELS, ids=lambda m: m.__name__)
def test_model_examples_are_valid_instances(model: type[BaseModel], document: dict[str, Any]) -> None:
    documented = document["components"]["schemas"][model.__name__]["examples"]
    assert documented
    for example in documented:
        model.model_validate(example)


@pytest.mark.parametrize("model", [CreateJobRequest, SaveConfigRequest], ids=lambda m: m.__name__)
def test_request_examples_are_configs_the_api_accepts(model: type[BaseModel]) -> None:
    for example in model.model_json_schema()["examples"]:
        parse_config(apply_values(example["config_body"], example.get("overrides", {})))


def test_metrics_and_stream_examples_are_valid() -> None:
    TypeAdapter(list[Metric]).validate_python(examples.METRICS)
    lines = examples.EVENT_STREAM.splitlines()
    data = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
    Event.model_validate_json(data[0])
    assert json.loads(data[-1]) == {"job_id": examples.JOB_ID}
