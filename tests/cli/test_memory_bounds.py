"""The memory bounds of the hostile-input tests hold with either torch wheel (issue 27, item 21): the
harness (tests/hostile.py) counts a command's peak and address space above the interpreter's own
footprint with torch imported, not the import itself (0.2 GB with the CPU wheel, more with CUDA's)."""

from __future__ import annotations

from pathlib import Path

from hostile import assert_one_line_error, run_cli_batch


def test_first_command_is_not_charged_for_importing_torch(tmp_path: Path) -> None:
    """`predict` and `test` fail on a missing file, `test` after importing torch-based modules: neither
    is charged torch's import (0.2 GB resident with the CPU wheel), only the modules of its own."""
    missing = tmp_path / "none.pkl"
    results = run_cli_batch([(["predict", str(missing), "--clip", "c0"], tmp_path),
                             (["test", "--checkpoint", str(tmp_path / "none.pt")], tmp_path)])
    for result in results:
        assert_one_line_error(result, "none.", max_peak_bytes=150 << 20)
        assert result.peak_bytes is not None


def test_address_space_limit_is_above_the_footprint(tmp_path: Path) -> None:
    """A limit smaller than torch's own address space (CUDA's wheel maps several GB) still lets the
    command run: the limit is what the command may add."""
    result, = run_cli_batch([(["predict", str(tmp_path / "none.pkl"), "--clip", "c0"], tmp_path)],
                            memory_limit=256 << 20)
    assert_one_line_error(result, "none.pkl")
