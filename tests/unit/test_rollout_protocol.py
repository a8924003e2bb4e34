"""Reward parsing across task-app generations, and the rollout request superset."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mipro.activity_models import RolloutTarget
from mipro.config import load_config_file
from mipro.rollout_protocol import auth_headers, parse_reward, rollout_payload

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "banking77.toml"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"metrics": {"outcome_reward": 0.7, "mean_return": 0.1}}, 0.7),  # Gen B' prefers outcome_reward
        ({"metrics": {"episode_returns": [1.0], "mean_return": 1.0, "outcome_score": 1.0}}, 1.0),  # Gen B
        ({"metrics": {"episode_returns": [0.0, 1.0], "num_steps": 1}}, 0.5),  # Gen A
        ({"reward_info": {"outcome_reward": 0.25}, "success_status": "success"}, 0.25),  # Gen C
        ({"metrics": {"outcome_objectives": {"reward": 0.4}}}, 0.4),
        ({"metrics": {"reward_mean": 0.3}}, 0.3),
        ({"trajectories": [{"steps": [{"reward": 0.0}, {"reward": 1.0}]}]}, 1.0),
        ({"metrics": {"outcome_score": 0.0}}, 0.0),  # a real zero is a zero
    ],
)
def test_reward_is_read_leniently(body: dict, expected: float) -> None:
    assert parse_reward(body) == pytest.approx(expected)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"metrics": {}},
        {"metrics": {"outcome_score": None}},
        {"metrics": {"outcome_score": "1.0"}},
        {"metrics": {"outcome_score": float("nan")}},
        {"metrics": {"outcome_score": True}},
        {"reward_info": {"outcome_reward": 1.0}, "success_status": "failure"},
        [],
        "ok",
        None,
    ],
)
def test_missing_or_bogus_reward_is_none_not_zero(body: object) -> None:
    assert parse_reward(body) is None


@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=5) | st.integers(),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    )
)
def test_parse_reward_never_crashes(body: object) -> None:
    value = parse_reward(body)
    assert value is None or isinstance(value, float)


def test_rollout_payload_is_a_superset_of_every_generation() -> None:
    target = RolloutTarget.from_config(load_config_file(EXAMPLE))
    body = rollout_payload(target, 42, "run-1", "trace_x", "http://127.0.0.1:1/v1/abc?cid=trace_x")
    for key in ("run_id", "trace_correlation_id", "env", "policy", "ops", "record", "mode"):
        assert key in body
    assert body["mode"] == "eval"
    assert body["env"] == {"env_name": "banking77", "seed": 42, "config": {"split": "train"}}
    config = body["policy"]["config"]
    assert config["inference_url"].endswith("?cid=trace_x")
    assert config["trace_correlation_id"] == "trace_x"
    assert config["model"] == "sim-small"
    assert config["prompt_template"]["sections"][0]["role"] == "system"


def test_auth_headers_carry_the_key_three_ways() -> None:
    assert auth_headers("k") == {"X-API-Key": "k", "X-API-Keys": "k", "Authorization": "Bearer k"}
    assert auth_headers(None) == {}
