"""The Dockerfile, without a Docker engine: what it copies is what the package build needs, its entrypoint
is the deploy script, and (`pytest -m slow`) its install step, run the same way in a fresh venv, gives an
installation whose commands work.

The slow test assembles the build context exactly as the COPY lines do, creates a fresh venv and runs the
Dockerfile's `RUN pip install ...` line in it as written (`pip` is the venv's). Like `docker build`, that
install fetches the project's dependencies from the package index pip is configured with; this is why it is
not in the default run. Not run: the base image (python:3.11-slim), `useradd`, and the image itself.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    joined: list[str] = []
    current = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        joined.append(current)
        current = ""
    return [
        (part[0].upper(), part[1] if len(part) > 1 else "") for part in (j.split(None, 1) for j in joined)
    ]


def workdir() -> PurePosixPath:
    return PurePosixPath(next(args for op, args in instructions() if op == "WORKDIR"))


def copies() -> list[tuple[list[str], PurePosixPath]]:
    """(sources, destination) of each COPY; a relative destination is under WORKDIR."""
    found = []
    for op, args in instructions():
        if op == "COPY":
            *sources, dest = shlex.split(args)
            target = PurePosixPath(dest)
            found.append((sources, target if target.is_absolute() else workdir() / target))
    return found


def placements() -> list[tuple[str, PurePosixPath]]:
    """(source, where it lands) for every COPY source, by Docker's rules: a directory's contents go into
    the destination; a file goes to the destination, or into it when it ends with "/" or there are
    several sources."""
    found = []
    for sources, dest in copies():
        into = len(sources) > 1 or str(dest).endswith("/") or dest == workdir()
        for source in sources:
            is_dir = (REPO / source).is_dir()
            found.append(
                (source.rstrip("/"), dest / PurePosixPath(source).name if into and not is_dir else dest)
            )
    return found


def copied_into_workdir() -> set[str]:
    """Repository paths that land in WORKDIR under the same relative path (as the build expects)."""
    return {
        source
        for source, where in placements()
        if where.is_relative_to(workdir()) and str(where.relative_to(workdir())) == source
    }


def test_every_copied_source_exists() -> None:
    for sources, _ in copies():
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"


def test_the_context_holds_what_the_package_build_needs() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    mapping = setuptools.get("package-dir", {})
    needed = {"pyproject.toml", project["project"]["readme"]}
    for package in setuptools["packages"]:
        parent = next((p for p in sorted(mapping, key=len, reverse=True) if package.startswith(p)), None)
        if parent is not None:
            rest = package[len(parent) :].lstrip(".").replace(".", "/")
            needed.add(f"{mapping[parent]}/{rest}".rstrip("/"))
        else:
            needed.add(package.replace(".", "/"))
    landed = copied_into_workdir()
    missing = sorted(n for n in needed if not any(n == c or n.startswith(f"{c}/") for c in landed))
    assert missing == [], f"the image build would lack: {missing}"
    assert "configs" in landed, "the shipped configs are in the image (docker compose run starter start ...)"


def test_entrypoint_is_the_deploy_script_and_its_default_mode_exists() -> None:
    ops = instructions()
    [entry] = [where for source, where in placements() if source == "deploy/entrypoint.sh"]
    assert str(entry) == "/usr/local/bin/mipro-entrypoint"
    assert ("ENTRYPOINT", '["mipro-entrypoint"]') in ops
    modes = set(re.findall(r"^  ([a-z0-9]+)\)$", (REPO / "deploy/entrypoint.sh").read_text(), re.MULTILINE))
    [cmd] = [args for op, args in ops if op == "CMD"]
    assert cmd.strip('[]"') in modes
    assert any(op == "USER" and args != "root" for op, args in ops), "the image does not run as root"


def _install_steps() -> list[str]:
    return [args for op, args in instructions() if op == "RUN" and "pip install" in args]


def _assemble_context(root: Path) -> Path:
    """WORKDIR's contents after the COPY lines, as a directory."""
    app = root / "app"
    for source, where in placements():
        if not where.is_relative_to(workdir()):
            continue
        src, target = REPO / source, app / where.relative_to(workdir())
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return app


@pytest.mark.slow
def test_install_step_in_a_fresh_venv(tmp_path: Path) -> None:
    [step] = _install_steps()
    app = _assemble_context(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    started = time.monotonic()
    done = subprocess.run(["sh", "-c", step], cwd=app, env=env, capture_output=True, text=True, timeout=1800)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"DOCKERFILE_INSTALL_SECONDS {took:.0f} ({step})")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    python = str(venv / "bin" / "python")
    imports = run(
        python,
        "-c",
        "import mipro.workflows, mipro.activities, mipro.starter, mipro.worker, mipro.llm_server, "
        "mipro.taskapps.banking77, mipro.simllm; import mipro, sys; print(mipro.__file__)",
    )
    assert imports.returncode == 0, imports.stderr
    assert str(venv) in imports.stdout, "imported from the venv, not the checkout"
    for args in (["mipro", "--help"], ["mipro", "worker", "--help"], ["mipro", "api", "--help"]):
        assert run(*args).returncode == 0, args
    # The entrypoint's modes against this installation: argparse exits 2 on a flag it does not know.
    for mode in (["worker"], ["api"], ["simllm"], ["banking77"], ["mipro", "start"]):
        done = run("sh", str(REPO / "deploy" / "entrypoint.sh"), *mode, "--help")
        assert done.returncode == 0 and "usage:" in done.stdout, (mode, done.stderr[-1500:])
    # Package data made it: the example app's fallback set and the shipped configs in the context.
    data = run(
        python, "-c", "import mipro.taskapps, pathlib; print(pathlib.Path(mipro.taskapps.__file__).parent)"
    )
    assert any((Path(data.stdout.strip()) / "data").iterdir())
