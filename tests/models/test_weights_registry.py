"""The shipped-weights registry refuses an entry it could never build."""

from __future__ import annotations

import pytest

from skelact.models import weights


def _entry(**change: object) -> dict:
    entry = {"name": "tiny", "file": "tiny.pt", "sha256": "0" * 64, "model": "stgcnpp", "classes": ["a", "b"],
             "layout": "penn13", "dataset": "none", "preprocessing": "none", "metrics": {}, "recipe": "none"}
    return {**entry, **change}


def test_an_entry_for_an_unregistered_model_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "_REGISTRY", {})
    refused = r"pretrained model 'tiny': no registered model 'stgcn_typo' \(registered: .*stgcnpp"
    with pytest.raises(ValueError, match=refused):
        weights.register_pretrained(_entry(model="stgcn_typo"))
    assert weights.list_pretrained() == []
    with pytest.raises(ValueError, match="sha256 must be 64 hex digits"):
        weights.register_pretrained(_entry(sha256="z" * 64))
    assert weights.register_pretrained(_entry()).model == "stgcnpp"
    assert weights.list_pretrained() == ["tiny"]
