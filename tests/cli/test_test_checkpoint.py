"""``skelact test --checkpoint``: a path or a shipped model name, resolved as ``predict --model`` is."""

from __future__ import annotations

from pathlib import Path

import pytest

from skelact.cli import main


@pytest.mark.parametrize("given, message", [
    ("missing.pt", "missing.pt: checkpoint not found"),
    ("runs/a/best", "runs/a/best: checkpoint not found"),
    ("no_such_model",
     "'no_such_model' is neither a checkpoint file nor a shipped model (shipped: penn_kpc3d, pretrain_kpc3d)"),
])
def test_a_checkpoint_that_is_not_there_is_one_line(given: str, message: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["test", "--checkpoint", given]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"skelact: error: {message}\n" and captured.out == ""
    assert list(tmp_path.iterdir()) == []  # no test/ folder left behind
