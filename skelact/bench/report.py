"""The machine's description and the report: environment, plain-text table, JSON."""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from .options import BenchReport

__all__ = ["BUSY_LIMIT", "cpu_busy", "cpu_model", "environment", "fmt", "format_table", "write_json"]

#: Above this fraction of busy cores before the run, the table carries a warning.
BUSY_LIMIT = 0.15


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs from /proc/stat."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    return fields[3] + (fields[4] if len(fields) > 4 else 0), sum(fields[:8])


def cpu_busy(seconds: float = 0.5) -> float | None:
    """Fraction of all cores busy over the next ``seconds`` (other processes: the benchmark is idle)."""
    a = _cpu_times()
    time.sleep(seconds)  # the benchmark's own process is idle meanwhile
    b = _cpu_times()
    if a is None or b is None or b[1] <= a[1]:
        return None
    return 1.0 - (b[0] - a[0]) / (b[1] - a[1])


def environment(threads: int | None = None) -> dict[str, Any]:
    """Versions, threads, device, CPU model and bf16 support, memory, load, how busy the CPU was just before, date."""
    import torch

    from skelact.runtime import native_bf16

    mem = _mem_total_gib()
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "threads": threads or torch.get_num_threads(),
        "device": "cpu",
        "cuda_available": torch.cuda.is_available(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": native_bf16(torch.device("cpu")),
        "cores": os.cpu_count(),
        "memory_gib": None if mem is None else round(mem, 1),
        "load_average": load,
        "cpu_busy_before": None if (busy := cpu_busy()) is None else round(busy, 3),
    }


def fmt(value: float | None) -> str:
    """Three significant digits, thousands separated; ``-`` for None."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    if abs(value) < 1e-3:
        return f"{value:.1e}"
    digits = max(0, 2 - int(math.floor(math.log10(abs(value)))))
    return f"{value:,.{min(digits, 3)}f}"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def format_table(report: BenchReport) -> str:
    """The report as aligned plain text: a header naming the machine, then one line per row.

    The ``x faster`` column is only filled on a reference's row, from ratios measured in this run.
    """
    e = report.env
    load = "" if e.get("load_average") is None else f", load average {e['load_average'][0]:g} at start"
    mode = "quick (smoke-test sizes, not for reporting)" if report.options.get("quick") else "full"
    bf16 = "native bf16" if e.get("native_bf16") else "no native bf16"
    head = [
        f"skelact bench, {mode}, {e['date']}",
        f"{e['cpu']} ({e.get('cpu_capability', '?')}, {bf16}), {e['cores']} cores, {e['memory_gib']} GiB{load}",
        f"Python {e['python']}, torch {e['torch']}, numpy {e['numpy']}, device {e['device']}, "
        f"torch on {_n(e['threads'], 'thread')}, median of {report.options['runs']} runs after a warm-up; "
        "'x faster': skelact's row over this reference, median of per-round ratios, interleaved in this run",
    ]
    if e.get("malloc_keeps_freed_memory"):
        head.append("malloc: keeps freed memory for reuse in skelact's process, as skelact train and test do "
                    "(skelact.runtime.keep_freed_memory)"
                    + ("; PYSKL's worker runs with the default" if report.options.get("pyskl") else ""))
    busy = e.get("cpu_busy_before")
    if busy is not None:
        head.append(f"cpu_busy_before: {100 * busy:.0f} % of the cores were busy with other processes")
        if busy > BUSY_LIMIT:
            head.append("WARNING: the machine was busy: absolute figures are not valid measurements of it "
                        "(same-run ratios are less affected)")
    cells = [(r.stage, r.item, fmt(r.value), r.unit, "" if r.speedup is None else f"{r.speedup:.2f}x", r.note)
             for r in report.rows]
    titles = ("stage", "what", "value", "unit", "x faster", "notes")
    widths = [max(len(t), *(len(c[i]) for c in cells)) if cells else len(t) for i, t in enumerate(titles)]

    def line(c: tuple[str, ...]) -> str:
        return (f"{c[0]:<{widths[0]}}  {c[1]:<{widths[1]}}  {c[2]:>{widths[2]}}  {c[3]:<{widths[3]}}  "
                f"{c[4]:>{widths[4]}}  {c[5]}").rstrip()

    body = [line(titles), line(tuple("-" * w for w in widths))]
    prev = None
    for c in cells:
        if prev is not None and c[0] != prev:
            body.append("")
        body.append(line(c))
        prev = c[0]
    return "\n".join(head + [""] + body)


def write_json(report: BenchReport, path: str | Path) -> Path:
    """Write the report as JSON (``value`` null for skipped rows), atomically."""
    from skelact.data.io import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(report.to_dict(), indent=2) + "\n").encode()
    atomic_write(path, lambda f: f.write(data))
    return path
