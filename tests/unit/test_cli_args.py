"""`mipro worker …` hands its options to worker.py's own parser, with the global --address."""

import pytest

import worker
from starter.cli import main


def test_worker_help_lists_the_worker_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["worker", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "usage: mipro worker" in out and "--max-rollouts" in out and "--max-activities" in out


def test_worker_options_and_the_global_address_reach_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(worker, "main", seen.append)
    with pytest.raises(SystemExit):
        main(["--address", "temporal.example:7233", "worker", "--max-rollouts", "4", "--task-queue", "q"])
    assert seen == [["--address", "temporal.example:7233", "--max-rollouts", "4", "--task-queue", "q"]]


def test_unknown_options_of_other_commands_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["status", "pl_0", "--bogus"])
    assert exited.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_demo_app_option_picks_the_task_app_and_its_config(monkeypatch: pytest.MonkeyPatch) -> None:
    import starter.demo

    seen: list[tuple[object, list[str], str]] = []

    async def fake_demo(config: object, overrides: list[str], app_name: str) -> int:
        seen.append((config, overrides, app_name))
        return 0

    monkeypatch.setattr(starter.demo, "run_demo", fake_demo)
    for argv in (["demo"], ["demo", "--app", "clinc150", "--set", "mipro.seed=3"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 0
    assert seen == [(None, [], "banking77"), (None, ["mipro.seed=3"], "clinc150")]
    with pytest.raises(SystemExit) as refused:
        main(["demo", "--app", "imdb"])
    assert refused.value.code == 2


def test_mipro_log_level_reaches_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """`mipro worker` configures logging twice (the CLI, then worker.main): $MIPRO_LOG_LEVEL must win both."""
    import logging

    from mipro.logging_setup import configure_logging

    monkeypatch.setenv("MIPRO_LOG_LEVEL", "debug")
    configure_logging(default="WARNING")  # what the CLI does
    configure_logging()  # what worker.main does
    assert logging.getLogger().level == logging.DEBUG
    monkeypatch.delenv("MIPRO_LOG_LEVEL")
    configure_logging()
    assert logging.getLogger().level == logging.INFO
