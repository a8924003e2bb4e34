"""docker-compose.yml, checked without a Docker engine (this machine has none, nor a `docker compose`
client): parsed as YAML, interpolated as Compose does (`${VAR:-default}`, `${VAR:?message}`, `$$`), and
validated with `jsonschema` against the Compose Specification schema (vendored in tests/data/compose-spec,
from the docker-compose 1.29.2 wheel). Then: every service the deployment needs exists, the Temporal
images are no newer than the server the tests run, the worker can be scaled, its variables are the ones
the code reads and are all listed in deploy/compose.env.example, the image's entrypoint turns them into
flags the real commands accept, and the namespace/search-attribute setup script works against the real
dev server. The schema-setup script (PostgreSQL + temporal-sql-tool) is not run here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from mipro import search_attributes as sa
from mipro.starter.stack import temporal_binary

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / "deploy" / "compose.env.example"
ENTRYPOINT = REPO / "deploy" / "entrypoint.sh"
SETUP_SCRIPT = REPO / "deploy" / "scripts" / "temporal-setup.sh"
SCHEMA = REPO / "tests" / "data" / "compose-spec" / "compose_spec.json"
MIPRO_IMAGE = "mipro-temporal:local"
NEEDED = {"ENVIRONMENT_API_KEY": "sk_env_compose_test"}

# ${NAME}, ${NAME:-x}, ${NAME-x}, ${NAME:?x}, ${NAME?x}, ${NAME:+x}, ${NAME+x}, $NAME, and $$ (a literal $).
_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    pass


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution (compose-spec, 'Interpolation')."""

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["plain"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        unset_or_empty = not value
        if op in (":-", "-"):
            return arg if (unset_or_empty if op == ":-" else value is None) else value or ""
        if op in (":?", "?"):
            if unset_or_empty if op == ":?" else value is None:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return value or ""
        if op in (":+", "+"):
            return arg if not (unset_or_empty if op == ":+" else value is None) else ""
        return value or ""

    return _VAR.sub(one, text)


def _walk(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_walk(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _walk(value, env) for key, value in node.items()}
    return node


def load_compose(env: Mapping[str, str], path: Path = COMPOSE) -> dict[str, Any]:
    """The compose file as `docker compose config` would see it: YAML (with merge keys), interpolated."""
    return _walk(yaml.safe_load(path.read_text()), env)


def validate(document: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    # The schema names draft 2019-09 by an address jsonschema does not map ("draft/2019-09/schema#").
    assert "2019-09" in schema["$schema"]
    jsonschema.Draft201909Validator.check_schema(schema)
    checker = jsonschema.Draft201909Validator.FORMAT_CHECKER
    jsonschema.Draft201909Validator(schema, format_checker=checker).validate(document)


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    for env in (NEEDED, {**NEEDED, "TEMPORAL_ADDRESS": "cluster.example:7233", "MIPRO_API_PORT": "9000"}):
        validate(load_compose(env))
    # The validator is strict: a misspelt key or a wrong type is caught.
    broken = load_compose(NEEDED)
    broken["services"]["worker"]["enviroment"] = broken["services"]["worker"].pop("environment")
    with pytest.raises(jsonschema.ValidationError, match="enviroment"):
        validate(broken)
    broken = load_compose(NEEDED)
    broken["services"]["worker"]["depends_on"] = {"temporal-setup": {"condition": "service_finished"}}
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_the_task_app_key_is_required() -> None:
    with pytest.raises(InterpolationError, match="ENVIRONMENT_API_KEY"):
        load_compose({})
    text = "a$$b ${X:-d} ${Y-e} ${Y:-e} ${X:+f} ${Z:+g} $X"
    assert interpolate(text, {"X": "1", "Y": ""}) == "a$b 1  e f  1"


def test_every_service_the_deployment_needs_is_there() -> None:
    services = load_compose(NEEDED)["services"]
    assert services["postgresql"]["image"].startswith("postgres:")
    assert services["temporal-schema"]["image"].startswith("temporalio/admin-tools:")  # schema setup
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert services["temporal-setup"]["image"].startswith("temporalio/admin-tools:")  # namespace + SAs
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    for name in ("worker", "api", "starter", "simllm", "banking77"):
        assert services[name]["image"] == MIPRO_IMAGE and services[name]["build"] == ".", name
    assert services["worker"]["command"] == ["worker"] and services["api"]["command"] == ["api"]
    profiles = {name: service.get("profiles", []) for name, service in services.items()}
    assert profiles["simllm"] == ["demo"] and profiles["banking77"] == ["demo"]
    assert profiles["starter"] == ["cli"]
    always = {"postgresql", "temporal-schema", "temporal", "temporal-setup", "temporal-ui", "worker", "api"}
    assert {name for name, p in profiles.items() if not p} == always
    # The order things start in.
    assert (
        services["temporal"]["depends_on"]["temporal-schema"]["condition"] == "service_completed_successfully"
    )
    for name in ("worker", "api"):
        assert services[name]["depends_on"]["temporal-setup"]["condition"] == "service_completed_successfully"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_temporal_images_are_no_newer_than_the_tested_server() -> None:
    out = subprocess.run([temporal_binary(), "--version"], capture_output=True, text=True, check=True).stdout
    server = re.search(r"Server (\d+\.\d+\.\d+)", out)
    ui = re.search(r"UI (\d+\.\d+\.\d+)", out)
    assert server and ui, out
    services = load_compose(NEEDED)["services"]
    tag = {name: services[name]["image"].rsplit(":", 1)[1] for name in services}
    for name in ("temporal", "temporal-schema", "temporal-setup"):
        assert _version(tag[name]) <= _version(server[1]), f"{name} {tag[name]} is newer than {server[1]}"
    assert _version(tag["temporal-ui"]) <= _version(ui[1])
    assert tag["temporal-schema"] == tag["temporal-setup"] == tag["temporal"], "admin tools match the server"


def test_worker_can_be_scaled() -> None:
    worker = load_compose(NEEDED)["services"]["worker"]
    assert "container_name" not in worker and "hostname" not in worker, "replicas need names of their own"
    assert "ports" not in worker, "a published host port would clash between replicas"
    assert worker["environment"]["MIPRO_INTERCEPTOR_PUBLIC_URL"] == "", "each replica names itself"
    assert int(worker["environment"]["MIPRO_INTERCEPTOR_PORT"]) > 0


def test_setup_registers_the_search_attributes_the_code_declares() -> None:
    setup = load_compose(NEEDED)["services"]["temporal-setup"]
    declared = sorted(setup["environment"]["MIPRO_SEARCH_ATTRIBUTES"].split())
    assert declared == sorted(f"{k.name}={sa.CLI_TYPES[int(k.indexed_value_type)]}" for k in sa.ALL)


def _interpolated_names() -> dict[str, str | None]:
    """Every ${VAR...} of the compose file: its default (`:-`), else None."""
    found: dict[str, str | None] = {}
    for match in _VAR.finditer(COMPOSE.read_text()):
        if name := match["braced"]:
            found.setdefault(name, match["arg"] if match["op"] == ":-" else None)
    return found


def _example() -> dict[str, str]:
    lines = [line for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_every_variable_is_listed_once_with_its_default() -> None:
    used, listed = _interpolated_names(), _example()
    assert set(used) == set(listed), set(used) ^ set(listed)
    for name, default in used.items():
        if default is not None:
            assert listed[name] == default, f"{name}: compose says {default!r}, the example {listed[name]!r}"


def _read_by_the_code(name: str) -> bool:
    sources = [*REPO.glob("mipro/**/*.py"), *REPO.glob("workflows/*.py"), *REPO.glob("activities/*.py")]
    sources += [*REPO.glob("starter/*.py")]
    quoted = f'"{name}"'
    if any(quoted in path.read_text() for path in sources):
        return True
    script = ENTRYPOINT.read_text()
    return f"${{{name}" in script or f"${name}" in script


def test_variables_of_mipro_containers_are_the_ones_the_code_reads() -> None:
    services = load_compose(NEEDED)["services"]
    given = {
        key
        for service in services.values()
        if service.get("image") == MIPRO_IMAGE
        for key in (service.get("environment") or {})
    }
    assert {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "MIPRO_TASK_QUEUE", "ENVIRONMENT_API_KEY"} <= given
    assert {"MIPRO_INTERCEPTOR_PUBLIC_URL", "OPENAI_API_KEY", "GROQ_API_KEY"} <= given
    unread = sorted(name for name in given if not _read_by_the_code(name))
    assert unread == [], f"set in docker-compose.yml but read by nothing: {unread}"


def _fake_bin(tmp_path: Path) -> Path:
    """`mipro` and `python` that print their arguments, one per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("mipro", "python"):
        fake = bin_dir / name
        fake.write_text(f'#!/bin/sh\necho {name}\nfor a in "$@"; do echo "$a"; done\n')
        fake.chmod(0o755)
    return bin_dir


def run_entrypoint(
    args: list[str], env: dict[str, str], bin_dir: Path | None = None
) -> subprocess.CompletedProcess:
    path = (
        f"{bin_dir}:{os.environ['PATH']}"
        if bin_dir
        else f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    )
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        env={"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_entrypoint_turns_variables_into_flags(tmp_path: Path) -> None:
    fake = _fake_bin(tmp_path)

    def argv(args: list[str], **env: str) -> list[str]:
        done = run_entrypoint(args, env, fake)
        assert done.returncode == 0, done.stderr
        return done.stdout.split("\n")[:-1]

    assert argv(["worker"]) == [
        "mipro", "worker", "--interceptor-host", "0.0.0.0", "--interceptor-port", "8400",
        "--task-queue", "mipro",
    ]  # fmt: skip
    flags = argv(
        ["worker", "--max-activities", "50"],
        MIPRO_INTERCEPTOR_PORT="8411",
        MIPRO_TASK_QUEUE="q1",
        MIPRO_INTERCEPTOR_PUBLIC_URL="http://worker-a:8411",
        MIPRO_MAX_ROLLOUTS="64",
    )
    assert flags[:2] == ["mipro", "worker"] and flags[-2:] == ["--max-activities", "50"]
    pairs = dict(zip(flags[2:-2:2], flags[3:-2:2], strict=True))
    assert pairs == {
        "--interceptor-host": "0.0.0.0",
        "--interceptor-port": "8411",
        "--task-queue": "q1",
        "--interceptor-public-url": "http://worker-a:8411",
        "--max-rollouts": "64",
    }
    assert argv(["api"]) == ["mipro", "api", "--host", "0.0.0.0", "--port", "8000"]
    assert argv(["simllm"]) == ["python", "-m", "mipro.simllm", "--host", "0.0.0.0", "--port", "8300"]
    assert argv(["banking77"]) == [
        "python", "-m", "mipro.taskapps.banking77", "--host", "0.0.0.0", "--port", "8102",
    ]  # fmt: skip
    assert argv(["mipro", "start", "c.toml"], MIPRO_TASK_QUEUE="q1") == [
        "mipro", "start", "--task-queue", "q1", "c.toml",
    ]  # fmt: skip
    assert argv(["mipro", "status", "pl_1"], MIPRO_TASK_QUEUE="q1") == ["mipro", "status", "pl_1"]


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["worker"], {}),
        (["worker"], {"MIPRO_INTERCEPTOR_PUBLIC_URL": "http://w:8400", "MIPRO_MAX_ROLLOUTS": "64"}),
        (["api"], {}),
        (["simllm"], {}),
        (["banking77"], {}),
        (["mipro", "start"], {"MIPRO_TASK_QUEUE": "q1"}),
    ],
    ids=["worker", "worker-all-flags", "api", "simllm", "banking77", "start"],
)
def test_the_real_commands_accept_the_entrypoints_flags(args: list[str], env: dict[str, str]) -> None:
    """The entrypoint against the installed commands (this venv), with --help: argparse refuses an
    unknown flag with exit 2, so exit 0 means every flag the entrypoint passes exists."""
    done = run_entrypoint([*args, "--help"], env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout


def test_every_mode_compose_uses_is_one_the_entrypoint_knows() -> None:
    modes = set(re.findall(r"^  ([a-z0-9]+)\)$", ENTRYPOINT.read_text(), flags=re.MULTILINE))
    services = load_compose(NEEDED)["services"]
    used = {s["command"][0] for s in services.values() if s.get("image") == MIPRO_IMAGE and "command" in s}
    used |= {
        s["entrypoint"][1] for s in services.values() if s.get("entrypoint", [""])[0] == "mipro-entrypoint"
    }
    assert used and used <= modes, used - modes


@pytest.mark.integration
async def test_setup_script_creates_the_namespace_and_search_attributes(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """deploy/scripts/temporal-setup.sh, as temporal-setup runs it, with the temporal CLI the tests use,
    against the real dev server on a fresh namespace; run twice (a restart finds everything there)."""
    setup = load_compose(NEEDED)["services"]["temporal-setup"]
    namespace = f"compose-test-{uuid.uuid4().hex[:8]}"
    env = {
        **setup["environment"],
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": namespace,
        "PATH": f"{Path(temporal_binary()).parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
    }
    for run in (1, 2):
        done = subprocess.run(["sh", str(SETUP_SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"run {run}: {done.stdout[-1500:]} {done.stderr[-1500:]}"
        assert "TEMPORAL_SETUP_READY" in done.stdout
    assert "exists" in done.stdout, "the second run found the namespace and attributes"
    listed = await temporal_env.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    custom = {name: IndexedValueType.Name(kind) for name, kind in listed.custom_attributes.items()}
    for key in sa.ALL:
        assert custom.get(key.name) == IndexedValueType.Name(int(key.indexed_value_type)), custom
