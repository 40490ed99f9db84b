"""Every stage's speed on this machine, as one table: ``skelact bench`` as a script.

    python benchmarks/run.py                  # full table (run it on an idle machine; ~4 min on 2 cores)
    python benchmarks/run.py --quick          # smoke test, well under a minute
    python benchmarks/run.py --only heatmap models --json bench.json

All options: ``python benchmarks/run.py --help`` (the same as ``skelact bench --help``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from skelact.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
