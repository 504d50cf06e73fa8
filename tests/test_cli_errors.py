"""Mistakes on the command line: exit 2, one error line with a suggestion, the usage of the command it was made in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.cli import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = str(ROOT / "samples" / "mixed_session.pcap")


def fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """(usage's first line, the error line) of a command line that must exit 2 and print nothing to stdout."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    return err.splitlines()[0], errors[0]


def test_a_misspelt_command_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    usage, error = fails(["analyse", SAMPLE], capsys)
    assert usage.startswith("usage: apple-net [-h]")
    assert error.startswith("apple-net: error: argument COMMAND: invalid choice: 'analyse'; did you mean 'analyze'?")


def test_a_misspelt_option_gets_a_suggestion_and_the_subcommands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    usage, error = fails(["analyze", "--formt", "json", SAMPLE], capsys)
    assert usage.startswith("usage: apple-net analyze [-h]")
    assert error == "apple-net analyze: error: unrecognized arguments: --formt; did you mean '--format'?"


def test_option_with_equals_sign(capsys: pytest.CaptureFixture[str]) -> None:
    _, error = fails(["flows", "--workrs=2", SAMPLE], capsys)
    assert error == "apple-net flows: error: unrecognized arguments: --workrs=2; did you mean '--workers'?"


def test_a_misspelt_choice_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    usage, error = fails(["analyze", "--format", "jsn", SAMPLE], capsys)
    assert usage.startswith("usage: apple-net analyze")
    assert "invalid choice: 'jsn'; did you mean 'json'? (choose from 'table', 'json'" in error


def test_nested_subcommand_errors_show_the_nested_usage(capsys: pytest.CaptureFixture[str]) -> None:
    usage, error = fails(["services", "lookup", "--bogus", "gs.apple.com"], capsys)
    assert usage.startswith("usage: apple-net services lookup")
    assert error == "apple-net services lookup: error: unrecognized arguments: --bogus"  # nothing close: no guess
    usage, error = fails(["services", "lokup", "gs.apple.com"], capsys)
    assert usage.startswith("usage: apple-net services [-h]")
    assert "invalid choice: 'lokup'; did you mean 'lookup'?" in error


def test_nothing_close_means_no_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    _, error = fails(["zzzz"], capsys)
    assert "did you mean" not in error and "invalid choice: 'zzzz'" in error


def test_signatures_folder_without_a_catalogue_names_the_folder_and_what_is_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("sources.toml", "sections.toml", "issuers.toml"):
        (tmp_path / name).write_bytes((ROOT / "signatures" / name).read_bytes())
    assert main(["analyze", "--signatures", str(tmp_path), SAMPLE]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"apple-net: error: {tmp_path}: not a signatures folder: no catalogue/*.toml in it ")
    assert len(err.splitlines()) == 1
    assert main(["services", "--signatures", str(tmp_path / "catalogue")]) == 2
    assert "signatures directory not found" in capsys.readouterr().err


def test_empty_folder_lists_every_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["services", "--signatures", str(tmp_path)]) == 2
    assert ("not a signatures folder: no sources.toml, sections.toml, issuers.toml, catalogue/*.toml in it"
            in capsys.readouterr().err)


def test_the_installed_command_exits_2_without_a_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "analyzer", "analyze", "--formt", "json", SAMPLE],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == "apple-net analyze: error: unrecognized arguments: --formt; did you mean '--format'?"
