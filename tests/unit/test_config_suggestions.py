"""A config refused for an unknown key suggests the closest valid key of that table (`batch_sise` -> did you
mean `batch_size`?): in the error itself, and through the real `mipro start --dry-run` command line."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mipro.config import apply_overrides, parse_config, unknown_key_fix
from mipro.errors import MIPROConfigurationError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "configs" / "banking77.toml"


def refusal(overrides: list[str]) -> MIPROConfigurationError:
    with pytest.raises(MIPROConfigurationError) as info:
        parse_config(apply_overrides(tomllib.loads(EXAMPLE.read_text()), overrides))
    return info.value


@pytest.mark.parametrize(
    ("override", "field", "fix"),
    [
        ("mipro.batch_sise=16", "prompt_learning.mipro.batch_sise", "did you mean `batch_size`?"),
        ("mipro.tpe.gama=0.3", "prompt_learning.mipro.tpe.gama", "did you mean `gamma`?"),
        ("mipro.meta.temprature=0.1", "prompt_learning.mipro.meta.temprature", "did you mean `temperature`?"),
        ("termination.max_spend=1", "prompt_learning.termination.max_spend", "did you mean `max_spend_usd`?"),
        ("task_app_ulr='http://x'", "prompt_learning.task_app_ulr", "did you mean `task_app_url`?"),
        (
            "batch_size=16",  # a real key, in the wrong table
            "prompt_learning.batch_size",
            "it belongs in another table: did you mean `mipro.batch_size`?",
        ),
    ],
)
def test_an_unknown_key_names_the_closest_valid_one(override: str, field: str, fix: str) -> None:
    error = refusal([override])
    assert [(f, x) for f, _, x in error.problems] == [(field, fix)]
    assert f"{field}: Extra inputs are not permitted ({fix})" in str(error)


def test_a_key_in_a_list_of_tables_is_matched_against_that_table() -> None:
    raw = tomllib.loads(EXAMPLE.read_text())
    raw["prompt_learning"]["initial_prompt"]["messages"][0]["rolee"] = "system"
    with pytest.raises(MIPROConfigurationError) as info:
        parse_config(raw)
    assert info.value.problems[0][0] == "prompt_learning.initial_prompt.messages.0.rolee"
    assert info.value.problems[0][2] == "did you mean `role`?"


def test_no_close_key_lists_the_valid_keys_of_that_table() -> None:
    [(field, _, fix)] = refusal(["mipro.tpe.zzz=1"]).problems
    assert field == "prompt_learning.mipro.tpe.zzz"
    assert fix.startswith("remove it or check its spelling; valid keys here: ") and "gamma" in fix
    assert unknown_key_fix(["mipro", "zzzzzz"]).startswith("remove it or check its spelling")


def test_every_typo_of_one_config_gets_its_own_suggestion() -> None:
    error = refusal(["mipro.batch_sise=16", "mipro.tpe.gama=0.3"])
    assert sorted(fix for _, _, fix in error.problems) == [
        "did you mean `batch_size`?",
        "did you mean `gamma`?",
    ]


def test_mipro_start_dry_run_suggests_the_key(tmp_path: Path) -> None:
    typo = tmp_path / "typo.toml"
    text = EXAMPLE.read_text()
    assert "\nbatch_size = 24\n" in text
    typo.write_text(text.replace("\nbatch_size = 24\n", "\nbatch_sise = 24\n"))
    done = subprocess.run(
        [sys.executable, "-m", "mipro.starter", "start", str(typo), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "prompt_learning.mipro.batch_sise: Extra inputs are not permitted" in done.stderr
    assert "did you mean `batch_size`?" in done.stderr and "Traceback" not in done.stderr
