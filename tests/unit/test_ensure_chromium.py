"""scripts/ensure_chromium.sh (run by `make test`) installs Chromium quietly: apt's output goes to a log,
and only a failed install prints its tail. The real script, with fake `apt-get` and `id` first on PATH."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "ensure_chromium.sh"
APT_LINES = 600  # about what a real install of Debian's chromium prints

FAKE_APT = f"""#!/bin/bash
echo "$*" >> "$FAKE_CALLS"
for i in $(seq 1 {APT_LINES // 2}); do
  echo "Get:$i fake apt line $1 $i"; echo "Unpacking fake $1 $i" >&2
done
if [ "$1" = install ]; then
  if [ -n "${{FAKE_INSTALL_OK:-}}" ]; then
    printf '#!/bin/sh\\n' > "$FAKE_BIN/chromium-fake" && chmod +x "$FAKE_BIN/chromium-fake"
    exit 0
  fi
  echo "E: Unable to locate package chromium (fake, last line)"
  exit 100
fi
exit 0
"""


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("apt-get", FAKE_APT), ("id", "#!/bin/sh\necho 0\n")):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    return bin_dir


def run_script(fake_bin: Path, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{fake_bin}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "CHROMIUM_CANDIDATES": "chromium-fake",
        "FAKE_BIN": str(fake_bin),
        "FAKE_CALLS": str(tmp_path / "apt-calls"),
        **extra,
    }
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def logs(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("ensure_chromium.*.log"))


def test_a_successful_install_prints_only_the_path(fake_bin: Path, tmp_path: Path) -> None:
    done = run_script(fake_bin, tmp_path, FAKE_INSTALL_OK="1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{fake_bin / 'chromium-fake'}\n"
    assert done.stderr == ""  # none of apt's lines
    assert (tmp_path / "apt-calls").read_text().split("\n")[0].startswith("install")
    assert logs(tmp_path) == []  # the log is removed once Chromium is there


def test_a_failed_install_prints_the_tail_and_keeps_the_log(fake_bin: Path, tmp_path: Path) -> None:
    done = run_script(fake_bin, tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) <= 45, f"{len(lines)} lines on stderr"
    assert "failed" in lines[0] and "E: Unable to locate package chromium (fake, last line)" in lines[-1]
    assert "Get:1 fake apt line install 1" not in done.stderr  # the head is left in the log
    [log] = logs(tmp_path)
    assert str(log) in done.stderr
    text = log.read_text()
    assert "Get:1 fake apt line install 1" in text and "fake apt line update" in text  # update, retried


def test_an_installed_chromium_is_found_without_apt(fake_bin: Path, tmp_path: Path) -> None:
    (fake_bin / "chromium-fake").write_text("#!/bin/sh\n")
    (fake_bin / "chromium-fake").chmod(0o755)
    done = run_script(fake_bin, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{fake_bin / 'chromium-fake'}\n", "")
    assert not (tmp_path / "apt-calls").exists()


def test_without_root_it_says_how_to_install(fake_bin: Path, tmp_path: Path) -> None:
    (fake_bin / "id").write_text("#!/bin/sh\necho 1000\n")
    done = run_script(fake_bin, tmp_path)
    assert done.returncode == 1 and "sudo apt-get install chromium" in done.stderr
    assert "chromium-fake" in done.stderr and not (tmp_path / "apt-calls").exists()
