"""The CLI in-process, and the one shape every refused command must have."""

from __future__ import annotations

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
