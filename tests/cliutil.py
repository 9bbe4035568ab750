"""The CLI in-process, and the one shape every refused command must have."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from click.testing import CliRunner, Result

from mlqi_rag.cli import cli


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def one_line_error(result: Result, *needles: str) -> str:
    """Failed with exit 1 and exactly one ``error:`` line (no traceback) naming the cause."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def on_read_only_mount(
    directory: Path, script: str, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """Run the shell ``script`` in a private mount namespace where ``directory`` is bind-mounted
    onto itself read-only (needs root and ``unshare``: see ``can_mount_read_only``)."""
    ro = f"mount --bind {directory} {directory} && mount -o remount,bind,ro {directory}"
    return subprocess.run(
        ["unshare", "-m", "sh", "-c", f"{ro} && {script}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def can_mount_read_only(directory: Path) -> bool:
    """Whether ``on_read_only_mount`` works here, and really makes ``directory`` unwritable."""
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    return on_read_only_mount(directory, f"! touch {directory}/x", timeout=30).returncode == 0
