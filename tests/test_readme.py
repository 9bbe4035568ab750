"""The README's commands and options exist (docs can't drift from the CLI)."""

from __future__ import annotations

import re
from pathlib import Path

from mlqi_rag.cli import cli
from mlqi_rag.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_readme_cli_options_exist() -> None:
    lines = [ln for ln in README.splitlines() if ln.startswith(".venv/bin/mlqi-rag ")]
    assert len(lines) >= 8
    for line in lines:
        name = line.split()[1]
        command = cli.commands[name]  # type: ignore[attr-defined]
        opts = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-k)\b", line):
            assert flag in opts, f"README uses {name} {flag}, which does not exist"
        assert "--json" in opts


def test_readme_settings_exist() -> None:
    fields = {f"MLQI_{name.upper()}" for name in Settings.model_fields}
    for var in set(re.findall(r"`(MLQI_[A-Z_]+)`", README)):
        assert var in fields, f"README documents {var}, which is not a setting"


def test_readme_first_screen_has_the_two_commands() -> None:
    first_screen = "\n".join(README.splitlines()[:12])
    assert "make run" in first_screen and "make test" in first_screen
