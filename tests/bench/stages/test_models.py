"""The model rows (skelact.bench.stages.models)."""

from __future__ import annotations

import pytest

from skelact.bench import BenchOptions
from skelact.bench.stages import Context


def test_model_rows_mark_unsteady_timings() -> None:
    """A row whose rounds (or its reference's) spread more than UNSTEADY says its figure is not a measure."""
    from skelact.bench.stages.models import UNSTEADY, _Rows
    from skelact.bench.timing import Interleaved

    rows = _Rows(Context(BenchOptions(quick=True, repeats=3, threads=1)), "m", 1)
    steady = [1.0, 1.1, 1.05]
    result = Interleaved(["a", "b"], {"a": steady, "b": [0.5, 0.5 * UNSTEADY * 1.2, 0.6]})
    rows.add(result, "a", "own", "n", None)
    rows.add(result, "b", "ref", "n", None, vs="a", vs_item="own")
    rows.add(Interleaved(["a", "c"], {"a": steady, "c": [2.0, 2.1, 2.2]}), "c", "ref2", "n", None, vs="a")
    own, ref, ref2 = rows.rows
    assert "UNSTEADY" not in own.note and own.extra["spread"] == pytest.approx(1.1)
    assert "UNSTEADY: round timings spread 3.6x, the ratio is not a measure" in ref.note
    assert "UNSTEADY" not in ref2.note and ref2.speedup == pytest.approx(2.0)
