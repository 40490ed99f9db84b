"""Random mutations of small valid annotation pickles (byte flips, truncations, opcode splices,
deletions and copies, memo index and length rewrites) fed to ``load_annotations``.

Every case must end, within a time bound and under an address-space limit, in either a valid
result or one ``AnnotationError`` line of at most 300 characters. The cases run in a worker
process (restarted after a crash or a hang), so a failure cannot take pytest down.

``SKELACT_FUZZ_CASES`` sets the number of cases (default 400, a second or two) and
``SKELACT_FUZZ_SEED`` the seed (default 0); case ``i`` is the same for a given seed whatever the
count, so a failure is reproduced with :func:`mutate` and the reported index.
"""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import select
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent  # tests/data: the worker imports this file from it
REPO = HERE.parents[1]
CASE_SECONDS = 10.0  # far beyond what a few-kilobyte file may take
MEMORY_LIMIT = 2 << 30  # address space of the worker (numpy alone takes ~150 MB)


def base_blobs() -> list[bytes]:
    """The valid files mutated: two small clips in the real format, in protocols 0, 2, 4 and 5."""
    rng = np.random.default_rng(0)
    anns = []
    for i in range(2):
        anns.append({"frame_dir": f"S001C001P001R001A00{i}", "total_frames": 3, "img_shape": (1080, 1920),
                     "original_shape": (1080, 1920), "label": np.int64(i),
                     "keypoint": rng.uniform(0, 1000, (1, 3, 5, 2)).astype(np.float32),
                     "keypoint_score": rng.uniform(0, 1, (1, 3, 5)).astype(np.float16)})
    anns[1] = OrderedDict(anns[1])
    layout = {"name": "five", "joints": list("abcde"), "edges": [[0, 1], [1, 2], [2, 3], [3, 4]]}
    data = {"split": {"train": [anns[0]["frame_dir"]], "val": [anns[1]["frame_dir"]]}, "annotations": anns,
            "classes": ["a", "b"], "layout": layout}
    return [pickle.dumps(data, protocol=p) for p in (0, 2, 4, 5)]


_MEMO_OPS = {"GET": "text", "BINGET": 1, "LONG_BINGET": 4, "PUT": "text", "BINPUT": 1, "LONG_BINPUT": 4}
_LENGTH_OPS = {"SHORT_BINUNICODE": 1, "SHORT_BINBYTES": 1, "BINUNICODE": 4, "BINBYTES": 4, "BINUNICODE8": 8,
               "BINBYTES8": 8, "BYTEARRAY8": 8, "FRAME": 8, "LONG1": 1, "LONG4": 4}
_OPCODES = [op.code.encode("latin-1") for op in pickletools.opcodes]


def _ops(blob: bytes) -> list[tuple[str, int]]:
    """(opcode name, byte offset) of each opcode of a valid blob."""
    return [(op.name, pos) for op, _, pos in pickletools.genops(blob)]


def mutate(blob: bytes, rng: np.random.Generator) -> bytes:
    """One to three random mutations of ``blob``."""
    data = bytearray(blob)
    ops = _ops(blob)
    bounds = [pos for _, pos in ops] + [len(blob)]
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(7))
        n = len(data)
        if n == 0:
            break
        if kind == 0:  # flip a few bytes
            for _ in range(int(rng.integers(1, 5))):
                data[int(rng.integers(n))] = int(rng.integers(256))
        elif kind == 1:  # truncate
            del data[int(rng.integers(n)):]
        elif kind == 2:  # splice a random opcode with a random argument at an opcode boundary
            at = min(int(rng.choice(bounds)), len(data))
            arg = bytes(rng.integers(0, 256, int(rng.integers(0, 10))).astype(np.uint8))
            data[at:at] = _OPCODES[int(rng.integers(len(_OPCODES)))] + arg
        elif kind == 3 and len(ops) > 2:  # delete one opcode
            i = int(rng.integers(len(ops) - 1))
            del data[bounds[i]:bounds[i + 1]]
        elif kind == 4 and len(ops) > 2:  # copy a run of opcodes elsewhere
            i = int(rng.integers(len(ops) - 1))
            j = min(len(ops), i + int(rng.integers(1, 20)))
            at = min(int(rng.choice(bounds)), len(data))
            data[at:at] = blob[bounds[i]:bounds[j]]
        elif kind == 5:  # rewrite a memo index
            memo = [(name, pos) for name, pos in ops if name in _MEMO_OPS and pos < len(data)]
            if memo:
                name, pos = memo[int(rng.integers(len(memo)))]
                index = int(rng.choice([rng.integers(0, 300), 2**31 - 1, 2**32 - 1, 0]))
                width = _MEMO_OPS[name]
                if width == "text":
                    end = data.find(b"\n", pos)
                    if end > 0:
                        data[pos + 1:end] = str(index).encode()
                else:
                    data[pos + 1:pos + 1 + width] = (index % 256**width).to_bytes(width, "little")
        else:  # rewrite a length
            counted = [(name, pos) for name, pos in ops if name in _LENGTH_OPS and pos < len(data)]
            if counted:
                name, pos = counted[int(rng.integers(len(counted)))]
                width = _LENGTH_OPS[name]
                old = int.from_bytes(data[pos + 1:pos + 1 + width], "little")
                new = int(rng.choice([old + int(rng.integers(-3, 4)), 256**width - 1, 2**31, 0])) % 256**width
                data[pos + 1:pos + 1 + width] = new.to_bytes(width, "little")
    return bytes(data)


def case_blob(seed: int, index: int) -> bytes:
    """The bytes of fuzz case ``index`` for ``seed``."""
    rng = np.random.default_rng([seed, index])
    bases = base_blobs()
    return mutate(bases[int(rng.integers(len(bases)))], rng)


_WORKER = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
seed, start, stop, limit = (int(x) for x in sys.argv[2:6])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from skelact.data.io import AnnotationError, load_annotations
import test_pickle_scan as fuzz
for i in range(start, stop):
    with open('case.pkl', 'wb') as f:
        f.write(fuzz.case_blob(seed, i))
    t0 = time.perf_counter()
    try:
        data = load_annotations('case.pkl', allow_unlabeled=True)
        kind, message = 'ok', str(len(data['annotations']))
    except AnnotationError as e:
        kind, message = 'error', str(e)
    except BaseException as e:
        kind, message = 'other', f'{type(e).__name__}: {str(e)[:300]}'
    print(json.dumps({'i': i, 'kind': kind, 'message': message, 'seconds': time.perf_counter() - t0}), flush=True)
"""


def run_fuzz(seed: int, count: int, folder: Path) -> tuple[dict[str, int], list[str]]:
    """Run cases ``0 .. count-1``; returns counts by outcome and the failures (with their index)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    counts = {"ok": 0, "error": 0}
    failures: list[str] = []
    start = 0
    while start < count:
        proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(HERE), str(seed), str(start), str(count),
                                 str(MEMORY_LIMIT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=folder,
                                env=env, text=True)
        deadline = time.monotonic() + CASE_SECONDS + 30  # the first case also pays for the imports
        next_case = start
        while next_case < count:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            line = proc.stdout.readline() if ready else ""
            if not line:  # a hang (nothing within the bound) or the worker died (a crash)
                proc.kill()
                what = "hang" if not ready else f"crash (status {proc.wait()}, {proc.stderr.read()[-300:]!r})"
                failures.append(f"case {next_case}: {what}")
                break
            result = json.loads(line)
            next_case = result["i"] + 1
            deadline = time.monotonic() + CASE_SECONDS
            message = result["message"]
            if result["kind"] == "other":
                failures.append(f"case {result['i']}: not an AnnotationError: {message}")
            elif result["kind"] == "error" and (len(message) > 300 or "\n" in message):
                failures.append(f"case {result['i']}: message of {len(message)} characters: {message[:200]!r}")
            elif result["seconds"] > CASE_SECONDS:
                failures.append(f"case {result['i']}: took {result['seconds']:.1f} s")
            else:
                counts[result["kind"]] += 1
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        start = next_case + (1 if next_case < count else 0)  # skip past a case that crashed or hung
    return counts, failures


def test_mutated_pickles_load_or_fail_in_one_line(tmp_path: Path) -> None:
    seed = int(os.environ.get("SKELACT_FUZZ_SEED", "0"))
    count = int(os.environ.get("SKELACT_FUZZ_CASES", "400"))
    counts, failures = run_fuzz(seed, count, tmp_path)
    assert not failures, f"{len(failures)} of {count} cases failed (seed {seed}): {failures[:5]}"
    assert counts["ok"] + counts["error"] == count
    assert counts["error"] > count // 4  # the mutations do reach the error paths ...
    print(f"fuzz seed {seed}: {count} cases, {counts['ok']} loaded, {counts['error']} refused")


def test_unmutated_bases_load(tmp_path: Path) -> None:
    """... and the files they start from are valid (so a refusal is the mutation's doing)."""
    from skelact.data.io import load_annotations

    for i, blob in enumerate(base_blobs()):
        path = tmp_path / f"base{i}.pkl"
        path.write_bytes(blob)
        out = load_annotations(path)
        assert [a["label"] for a in out["annotations"]] == [0, 1] and out["layout"]["name"] == "five"
