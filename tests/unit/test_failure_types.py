"""Failure types are one enum: raised and listed as non-retryable by name, never as string copies."""

from __future__ import annotations

import re

from mipro.errors import FailureType
from tests.conftest import REPO

SOURCES = ["workflows", "activities", "mipro/interceptor", "mipro/worker.py"]


def test_no_failure_type_is_spelled_out_where_jobs_fail() -> None:
    names = "|".join(re.escape(t.value) for t in FailureType)
    literal = re.compile(rf"[\"']({names})[\"']")
    files = [p for s in SOURCES for p in ([REPO / s] if s.endswith(".py") else (REPO / s).rglob("*.py"))]
    found = [f"{p.relative_to(REPO)}: {m.group(0)}" for p in files for m in literal.finditer(p.read_text())]
    assert files and not found, f"use mipro.errors.FailureType instead of: {found}"


def test_failure_types_are_the_documented_names() -> None:
    assert {t.value for t in FailureType} == {
        "TaskAppHealthCheckFailed",
        "TaskAppAuthError",
        "BudgetExceededError",
        "TransformApplicationError",
    }
    assert all(isinstance(t, str) and str(t) == t.value for t in FailureType)  # an ApplicationError type
