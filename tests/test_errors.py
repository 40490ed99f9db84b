"""``skelact.errors.one_line``: the one way a message is cut to one bounded line (and the CLI uses it)."""

from __future__ import annotations

import pytest

from skelact.cli import MAX_MESSAGE, run
from skelact.errors import DETAIL_LIMIT, SkelactError, one_line


def test_one_line_joins_lines_and_cuts_at_the_limit() -> None:
    assert one_line("  a\n\tb  \r\n c ") == "a b c"
    assert one_line("x" * DETAIL_LIMIT) == "x" * DETAIL_LIMIT
    cut = one_line("x" * (DETAIL_LIMIT + 1))
    assert len(cut) == DETAIL_LIMIT and cut.endswith("...")
    assert one_line("word " * 100, 20) == "word word word wo..."
    assert one_line(ValueError("bad\nvalue")) == "bad value"
    assert one_line(KeyboardInterrupt()) == "KeyboardInterrupt"  # empty message: the type names it
    assert one_line(OSError("  ")) == "OSError"


def test_cli_prints_a_multiline_message_as_one_bounded_line(capsys: pytest.CaptureFixture[str]) -> None:
    def fail() -> None:
        raise SkelactError("data.pkl: first line\nsecond line " + "y" * 1000)

    assert run(fail) == 1
    err = capsys.readouterr().err
    assert err.startswith("skelact: error: data.pkl: first line second line yyy") and err.endswith("...\n")
    assert err.count("\n") == 1 and len(err) == len("skelact: error: ") + MAX_MESSAGE + 1
    assert "Traceback" not in err


def test_cli_names_an_unexpected_error_with_an_empty_message_by_its_type(capsys: pytest.CaptureFixture[str]) -> None:
    def fail() -> None:
        raise LookupError()

    assert run(fail) == 1
    expected = "skelact: error: unexpected LookupError (run with SKELACT_DEBUG=1 for the traceback)\n"
    assert capsys.readouterr().err == expected
