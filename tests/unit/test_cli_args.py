"""`mipro worker …` hands its options to worker.py's own parser, with the global --address."""

import pytest

from mipro import worker
from mipro.starter.cli import main


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
    import mipro.starter.demo

    seen: list[tuple[object, list[str], str]] = []

    async def fake_demo(config: object, overrides: list[str], app_name: str) -> int:
        seen.append((config, overrides, app_name))
        return 0

    monkeypatch.setattr(mipro.starter.demo, "run_demo", fake_demo)
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


# ---- issue 12: the CLI tells the truth about failed and unknown jobs --------------------------------


def test_listing_statuses_are_the_status_queries() -> None:
    from mipro.starter.cli import STATUSES
    from mipro.starter.jobs import STATUS_QUERIES

    assert tuple(STATUS_QUERIES) == STATUSES


def test_a_failure_says_its_type_once() -> None:
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import ApplicationError

    from mipro.starter.jobs import failure_of

    doubled = ApplicationError(
        "TaskAppHealthCheckFailed: task app at http://x is unreachable", type="TaskAppHealthCheckFailed"
    )
    found = failure_of(WorkflowFailureError(cause=doubled))
    assert (found.type, found.message) == ("TaskAppHealthCheckFailed", "task app at http://x is unreachable")
    plain = failure_of(WorkflowFailureError(cause=ApplicationError("no demo", type="BudgetExceededError")))
    assert (plain.type, plain.message) == ("BudgetExceededError", "no demo")


def _progress(started_at: object, trials_done: int, elapsed: float, paused: bool = False) -> object:
    from mipro.job_models import Progress

    return Progress(
        job_id="pl_0",
        phase="search",
        iteration=1,
        num_iterations=8,
        trials_done=trials_done,
        trials_planned=32,
        rollouts_done=0,
        rollout_errors=0,
        errors_by_kind={},
        baseline_score=None,
        best_minibatch_score=None,
        best_validation_score=None,
        spend_usd=0.0,
        spend_by_category={},
        tokens=0,
        elapsed_seconds=elapsed,
        eta_seconds=None,
        started_at=started_at,
        paused=paused,
    )


def test_the_eta_stands_still_while_paused_and_forgets_the_pause_after() -> None:
    from datetime import UTC, datetime, timedelta

    from mipro.job_models import Event
    from mipro.starter.jobs import PauseClock, clock_times

    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    clock = PauseClock()
    clock.feed([Event(seq=7, type="mipro.job.paused", message="", created_at=at(10))])
    # 4 trials in 10 s of running: 28 left take 70 s, however long the pause lasts. The workflow's own
    # elapsed is stale (its last activation, at 10 s); the clock counts from the job's start.
    for now in (20, 100, 1000):
        elapsed, paused, eta = clock_times(_progress(t0, 4, elapsed=10.0, paused=True), clock, at(now))
        assert (elapsed, paused) == (now, now - 10) and eta == 70.0
    clock.feed([Event(seq=9, type="mipro.job.resumed", message="", created_at=at(1000))])
    assert clock.since == 9
    elapsed, paused, eta = clock_times(_progress(t0, 8, elapsed=1010.0), clock, at(1010))
    assert (elapsed, paused) == (1010, 990) and eta == 20 / 8 * 24  # 20 s of running for 8 trials


def test_no_temporal_is_one_line_with_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--address", "127.0.0.1:1", "status", "pl_0123456789abcdef"])
    err = capsys.readouterr().err
    assert exited.value.code == 1
    assert err.startswith("error: cannot reach Temporal at 127.0.0.1:1 (namespace default)")
    assert "start one with: mipro server" in err and "Traceback" not in err and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["--debug", "--address", "127.0.0.1:1", "status", "pl_0123456789abcdef"])
    assert "Traceback" in capsys.readouterr().err


def test_dry_run_without_a_task_app_says_the_prompt_was_not_measured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.conftest import REPO

    config = str(REPO / "configs" / "banking77.toml")
    with pytest.raises(SystemExit) as exited:
        main(["start", config, "--dry-run", "--set", 'task_app_url="http://127.0.0.1:1"'])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    assert "one baseline rollout" in out and "the baseline rollout failed: task app at" in out
    assert "the prompt was not measured" in out and "unreachable" in out


def test_a_worker_without_the_task_app_key_warns() -> None:
    warning = worker.missing_key_warning({})
    assert warning is not None and "ENVIRONMENT_API_KEY is not set" in warning
    assert worker.missing_key_warning({"ENVIRONMENT_API_KEY": "sk_env_x"}) is None


def test_job_list_off_a_terminal_is_whole_cells_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    import json
    from datetime import UTC, datetime

    from mipro.starter import render
    from mipro.starter.jobs import JobRow

    row = JobRow(
        job_id="pl_0123456789abcdef",
        temporal_status="COMPLETED",
        status="succeeded",
        org="a-rather-long-organisation-name",
        best_score=0.5,
        trials=32,
        spend_usd=0.1896,
        started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    render.print_job_list([row])  # capsys is no terminal
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == list(render.LIST_COLUMNS)
    assert lines[1].split("\t") == [
        "pl_0123456789abcdef",
        "succeeded",
        "COMPLETED",
        "a-rather-long-organisation-name",
        "0.500",
        "32",
        "$0.1896",
        "2026-01-02 03:04:05",
        "-",
    ]
    render.print_job_list([row], as_json=True)
    assert json.loads(capsys.readouterr().out)[0]["status"] == "succeeded"


def test_stack_prints_the_start_command_for_its_ports() -> None:
    from mipro.starter.local_stack import start_command

    default = start_command("banking77", "http://127.0.0.1:8102", "http://127.0.0.1:8300")
    assert default.startswith("mipro start ") and default.endswith("configs/banking77.toml --watch")
    moved = start_command("clinc150", "http://127.0.0.1:9000", "http://127.0.0.1:8300")
    assert "clinc150.toml --set 'task_app_url=\"http://127.0.0.1:9000\"' --watch" in moved


def test_a_job_waiting_for_its_task_app_says_so_and_a_stopped_one_says_what_failed() -> None:
    from mipro.starter import render
    from mipro.starter.jobs import JobSnapshot

    waiting = _progress(None, 3, elapsed=5.0).model_copy(update={"waiting_for_task_app": True})
    snap = JobSnapshot(
        job_id="pl_0", status="running", temporal_status="RUNNING", closed=False, progress=waiting
    )
    assert render.status_label(snap) == "WAITING"
    assert render.status_line(snap).endswith(
        "(the task app does not answer: waiting for it, resumes by itself)"
    )
    stopped = waiting.model_copy(
        update={
            "phase": "done",
            "stop_reason": "max_consecutive_errors",
            "rollouts_done": 40,
            "rollout_errors": 12,
            "errors_by_kind": {"connection": 12, "http_5xx": 3},
        }
    )
    done = JobSnapshot(
        job_id="pl_0", status="stopped_on_errors", temporal_status="COMPLETED", closed=True, progress=stopped
    )
    assert render.status_label(done) == "stopped_on_errors"  # closed: no longer waiting
    line = render.status_line(done)
    assert line.startswith("stopped_on_errors ") and line.endswith(
        "(max_consecutive_errors: 12 of 40 rollouts failed (connection: 12, http_5xx: 3))"
    )
    outcome = render.outcome_line(done)
    assert outcome.startswith("job pl_0 stopped on errors (max_consecutive_errors): 12 of 40 rollouts failed")
    from mipro.starter.cli import _exit_code

    assert _exit_code("stopped_on_errors") == 1 and _exit_code("succeeded") == 0


def test_the_job_list_shows_the_task_apps_data_source_in_one_cell(capsys: pytest.CaptureFixture[str]) -> None:
    from mipro.starter import render
    from mipro.starter.jobs import JobRow

    row = JobRow(
        job_id="pl_0123456789abcdef",
        temporal_status="COMPLETED",
        status="stopped_on_errors",
        org="acme",
        best_score=None,
        trials=0,
        spend_usd=None,
        started_at=None,
        data_source="fallback: small built-in\tintent set\n(12 intents)",
    )
    render.print_job_list([row])
    cells = capsys.readouterr().out.splitlines()[1].split("\t")
    assert cells[1] == "stopped_on_errors" and cells[-1] == "fallback: small built-in intent set (12 intents)"


def test_the_ui_link_follows_the_server_the_cli_talks_to(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """The UI recorded by the dev server started on that port, else the dev server's default (port +
    1000), Temporal Cloud's for a *.tmprl.cloud address, or $MIPRO_TEMPORAL_UI_URL."""
    from mipro.starter import jobs, stack

    monkeypatch.setattr(stack, "STATE_DIR", tmp_path)
    monkeypatch.delenv("MIPRO_TEMPORAL_UI_URL", raising=False)
    monkeypatch.delenv("TEMPORAL_ADDRESS", raising=False)
    assert jobs.ui_base() == "http://localhost:8233"
    assert jobs.ui_base("127.0.0.1:17233") == "http://127.0.0.1:18233"
    stack.record_ui_port(17233, 18299)
    stack.record_ui_port(7233, 9000)
    assert jobs.ui_base("127.0.0.1:17233") == "http://127.0.0.1:18299"
    assert jobs.ui_link("pl_1", "ns") == "http://localhost:9000/namespaces/ns/workflows/pl_1"
    assert jobs.ui_base("acme.a1b2c.tmprl.cloud:7233") == "https://cloud.temporal.io"
    monkeypatch.setenv("MIPRO_TEMPORAL_UI_URL", "https://ui.example.org/")
    assert jobs.ui_link("pl_1") == "https://ui.example.org/namespaces/default/workflows/pl_1"


def test_llm_server_hands_its_options_to_mipro_llm_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from mipro import llm_server

    seen: list[list[str]] = []
    monkeypatch.setattr(llm_server, "main", lambda argv: seen.append(list(argv)) or 0)
    with pytest.raises(SystemExit) as exited:
        main(["llm-server", "--port", "8400", "--threads", "1"])
    assert exited.value.code == 0 and seen == [["--port", "8400", "--threads", "1"]]
