"""The command line (skelact.cli): help for every sub-command, the console script, one-line errors, the
catch-all for unexpected errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostile import expect_error

from skelact.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def test_help_for_every_subcommand(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"convert", "info"} <= set(sub.choices)
    for name in sub.choices:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert "usage: skelact " + name in capsys.readouterr().out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "skelact.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("skelact ")


def test_errors_are_one_line_and_nonzero(tmp_path, capsys):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"garbage")
    assert main(["info", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("skelact: error: ") and str(bad) in err and "\n" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["convert", "ucla", str(empty), "-o", str(tmp_path / "u.pkl")]) == 1
    err = capsys.readouterr().err.strip()
    assert "empty" in err and "\n" not in err
    assert not (tmp_path / "u.pkl").exists()


def test_unexpected_errors_are_one_line_with_the_debug_hint(run: dict[str, Path], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import skelact.data.io as io_module

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug\nover two lines")

    monkeypatch.setattr(io_module, "summarize", broken)
    line = expect_error(capsys, ["info", str(run["data"])], ["unexpected ZeroDivisionError: a bug over two lines",
                                                             "SKELACT_DEBUG=1"])
    assert line.endswith("for the traceback)")
    monkeypatch.setenv("SKELACT_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["info", str(run["data"])])


def test_the_console_script_exit_codes(tmp_path: Path) -> None:
    """Through a real process: 2 for a usage error, 1 for a bad file, one line on stderr each."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"junk")
    for args, code in ((["info"], 2), (["info", str(bad)], 1)):
        out = subprocess.run([sys.executable, "-m", "skelact.cli", *args], capture_output=True, text=True, env=env)
        assert out.returncode == code and len(out.stderr.strip().splitlines()) == 1, out.stderr
