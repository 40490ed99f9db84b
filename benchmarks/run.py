"""Every stage's speed on this machine, as one table: ``skelact bench`` as a script.

    python benchmarks/run.py                  # full table (run it on an idle machine)
    python benchmarks/run.py --quick          # smoke test, about a minute
    python benchmarks/run.py --only heatmap models --json bench.json
    python benchmarks/run.py --pyskl /work/pyskl --pyskl-python /work/pyskl-venv/bin/python --json bench.json

Every "x faster" in the table is measured in the same run, interleaved with skelact's figure;
``--pyskl`` adds PYSKL's own heatmap generator and models (a checkout of
github.com/kennymckormick/pyskl, run by an interpreter that has mmcv 1.x; see skelact/bench/pyskl.py).
All options: ``python benchmarks/run.py --help`` (the same as ``skelact bench --help``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from skelact.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
