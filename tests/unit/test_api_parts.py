"""The REST API's pure parts: key ring, status mapping, metrics series, dotted overrides, secret notices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus as WES

from mipro.api.auth import KeyRing, hash_key, new_key
from mipro.api.errors import ApiError
from mipro.api.secrets import secret_notices
from mipro.budget import Spend
from mipro.config import apply_values
from mipro.errors import MIPROConfigurationError
from mipro.job_models import TrialRecord, ValidationRecord
from mipro.metrics import job_metrics
from mipro.starter.jobs import effective_status
from mipro.types import CandidateChoice, Usage


def test_keys_map_to_orgs_and_only_hashes_are_kept(tmp_path: Path) -> None:
    a, b, c = new_key(), new_key(), new_key()
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps({"keys": [{"org": "gamma", "sha256": hash_key(c)}]}))
    ring = KeyRing.load(f"acme:{a}, beta:{b}", keys_file)
    assert len(ring) == 3
    assert (ring.org_for(a), ring.org_for(b), ring.org_for(c)) == ("acme", "beta", "gamma")
    assert ring.org_for(a + "x") is None and ring.org_for("") is None
    assert all(a not in repr(entry) and b not in repr(entry) for entry in ring._entries)


@pytest.mark.parametrize("env", ["acme", "acme:", ":sk", "bad org:sk"])
def test_a_bad_keys_env_names_the_variable(env: str) -> None:
    with pytest.raises(MIPROConfigurationError, match="MIPRO_API_KEYS"):
        KeyRing.load(env, None)


def test_a_bad_keys_file_says_what_is_expected(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [{"org": "acme", "sha256": "not-hex"}]}))
    with pytest.raises(MIPROConfigurationError, match="sha256"):
        KeyRing.load(None, path)


@pytest.mark.parametrize(
    ("execution", "attribute", "expected"),
    [
        (WES.RUNNING, "created", "created"),
        (WES.RUNNING, "paused", "paused"),
        (WES.RUNNING, "running", "running"),
        (WES.RUNNING, None, "running"),
        (WES.RUNNING, "succeeded", "running"),  # upserted just before the workflow closes
        (WES.COMPLETED, "succeeded", "succeeded"),
        (WES.COMPLETED, "cancelled", "cancelled"),
        (WES.COMPLETED, "stopped_on_errors", "stopped_on_errors"),  # its own status, never succeeded
        (WES.RUNNING, "stopped_on_errors", "running"),
        (WES.COMPLETED, "running", "succeeded"),
        (WES.FAILED, "running", "failed"),  # a closed workflow never reads as running
        (WES.TERMINATED, "paused", "terminated"),
        (WES.CANCELED, "running", "cancelled"),
        (WES.TIMED_OUT, "running", "timed_out"),
    ],
)
def test_effective_status(execution: WES, attribute: str | None, expected: str) -> None:
    assert effective_status(execution, attribute) == expected


def test_every_job_status_is_an_api_status_and_a_listing_filter() -> None:
    from typing import get_args

    from mipro.api.models import ApiJobStatus
    from mipro.job_models import JobStatus
    from mipro.starter.jobs import STATUS_QUERIES

    closed_by_temporal = {"failed", "terminated", "timed_out"}
    assert set(get_args(JobStatus)) - {"running"} <= set(get_args(ApiJobStatus))
    assert set(get_args(ApiJobStatus)) == set(STATUS_QUERIES)
    assert set(get_args(JobStatus)) | {"created", "paused"} | closed_by_temporal == set(STATUS_QUERIES)


def _trial(n: int, score: float | None) -> TrialRecord:
    choice = CandidateChoice(instruction=[n % 2], demo_set=[n % 3])
    return TrialRecord(
        trial=n, iteration=n // 2, choice=choice, candidate_hash=f"h{n}", seeds=[1, 2], minibatch_score=score,
        paired_lift=None, n=2, errors=0 if score is not None else 2, spend_usd=0.01 * n,
    )  # fmt: skip


def test_metrics_series_has_running_bests_and_spend() -> None:
    trials = [_trial(1, 0.5), _trial(2, None), _trial(3, 0.25), _trial(4, 0.75)]
    validations = [
        ValidationRecord(
            after_trials=2, key="0:0", score=0.4, incumbent=True, elapsed_seconds=1, spend_usd=0.1
        ),
        ValidationRecord(
            after_trials=4, key="1:1", score=0.3, incumbent=False, elapsed_seconds=2, spend_usd=0.2
        ),
    ]
    spend = Spend(rollout=Usage(calls=3, prompt_tokens=10, completion_tokens=2, cost_usd=0.5))
    series = job_metrics(trials, validations, spend)
    by_name: dict[str, list[tuple[int, float]]] = {}
    for m in series:
        by_name.setdefault(m.name, []).append((m.step, m.value))
    assert by_name["trial.minibatch_score"] == [(1, 0.5), (3, 0.25), (4, 0.75)]  # a trial without score: none
    assert by_name["trial.best_minibatch_score"] == [(1, 0.5), (3, 0.5), (4, 0.75)]
    assert by_name["validation.best_score"] == [(2, 0.4), (4, 0.4)]
    assert by_name["spend.rollout_usd"] == [(4, 0.5)] and by_name["spend.total_usd"] == [(4, 0.5)]


def test_dotted_values_set_nested_keys_on_a_copy() -> None:
    raw = {"prompt_learning": {"mipro": {"batch_size": 4}}}
    out = apply_values(
        raw, {"mipro.batch_size": 8, "prompt_learning.mipro.tpe.gamma": 0.3, "policy.model": "m"}
    )
    assert out["prompt_learning"]["mipro"] == {"batch_size": 8, "tpe": {"gamma": 0.3}}
    assert (
        out["prompt_learning"]["policy"] == {"model": "m"}
        and raw["prompt_learning"]["mipro"]["batch_size"] == 4
    )
    with pytest.raises(MIPROConfigurationError, match="is not a table"):
        apply_values(raw, {"mipro.batch_size.x": 1})
    with pytest.raises(MIPROConfigurationError, match="empty key"):
        apply_values(raw, {"mipro..x": 1})


def test_secret_notices() -> None:
    body = {"prompt_learning": {"task_app_api_key": "sk", "task_app_api_key_env": "MY_KEY"}}
    assert "MY_KEY" in secret_notices(body, {}, {})[0]
    assert "ENVIRONMENT_API_KEY" in secret_notices({}, {"task_app_api_key": "sk"}, {})[0]
    assert secret_notices({"prompt_learning": {}}, {"mipro.batch_size": 2}, {"team": "a"}) == []
    with pytest.raises(ApiError) as info:
        secret_notices({}, {}, {"github_token": "x"})
    assert info.value.status == 422 and info.value.details[0].field == "metadata.github_token"
