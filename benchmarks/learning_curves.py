"""Learning curves: test top-1 against training clips per class, from scratch, fine-tuned and ensembled.

    python benchmarks/learning_curves.py --dataset penn --out work_dirs/curves \
        [--per-class 5,10,20,50,full] [--seeds 0,1,2] [--variants scratch,streams,init] \
        [--init CKPT|NAME] [--model kpc3d] [--jobs 2] [--set KEY=VALUE ...]

For each number of clips per class N and seed S, ``OUT/data/DATASET_N_sS.pkl`` holds N training
clips of each class, drawn at random (seeded by S) from the official training split, and the whole
official test split (``full``: the whole training split). Each run is the chain a user runs, each
step a ``python -m skelact.cli`` process timed by wall clock:

- ``scratch``: ``skelact train DATA.pkl --model M --seed S --streams j``: the zero-config recipe, one
  network (it carves its validation share out of the N clips per class); before 2026-12-08 this was
  the zero-config itself, which now trains four streams on up to 1,500 training clips;
- ``streams``: the same with ``--streams j,b,jm,bm`` (one ensemble checkpoint): the zero-config of
  kpc3d on up to 1,500 training clips;
- ``init``: the same with ``--init CKPT`` (fine-tuning); ``init-streams``: both (each stream from the
  start's network of its features: a four-stream start from ``pretrain.py --streams j,b,jm,bm``);

then ``skelact test`` on the test split (10 views): ``last.pt`` and ``best.pt`` (ensembles written
before 2026-12-08 have ``best.pt`` only). A run's result is ``OUT/runs/NAME/result.json``;
runs already done are skipped, so the grid can be filled in several sittings. ``OUT/summary.md``
gathers every result found: per cell the seeds' top-1 and their mean, with training time.

``--jobs 2`` runs two runs at once with one thread each (``OMP_NUM_THREADS``; on 2 cores that
trains about twice the runs per hour as one run on two threads, the small batches use one core
poorly). Times are then those of a run sharing the machine with another; the load is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from common import SkelactFailed, cli, shared_default  # noqa: E402

from skelact.bench.report import cpu_model  # noqa: E402
from skelact.data.io import atomic_write, load_annotations, save_annotations  # noqa: E402

#: dataset name -> (skelact convert arguments below SHARED/data, the converted file's name)
DATASETS = {"penn": (["penn", "penn_action"], "penn_action.pkl"),
            "ucla": (["ucla", "nwucla/all_sqe"], "nwucla.pkl")}
_LOCK = threading.Lock()


def subset(data: dict, per_class: int | None, seed: int) -> dict:
    """``data`` with ``per_class`` random training clips of each class (all where a class has fewer; None: all)."""
    train = list(data["split"]["train"])
    if per_class is not None:
        label = {a["frame_dir"]: a["label"] for a in data["annotations"]}
        rng = np.random.default_rng(seed)
        keep: list[str] = []
        for c in sorted(set(label[n] for n in train)):
            names = sorted(n for n in train if label[n] == c)
            keep += [names[i] for i in sorted(rng.permutation(len(names))[:per_class])]
        train = keep
    wanted = set(train) | set(data["split"]["test"])
    return {**data, "split": {"train": train, "test": list(data["split"]["test"])},
            "annotations": [a for a in data["annotations"] if a["frame_dir"] in wanted]}


def run_one(out: Path, name: str, data_file: Path, variant: str, seed: int, args: argparse.Namespace,
            threads: int) -> dict:
    """Train and test one run; its result (also written to ``OUT/runs/NAME/result.json``)."""
    work = out / "runs" / name
    if (work / "result.json").exists():
        return json.loads((work / "result.json").read_text())
    if work.exists():  # an interrupted run: train refuses a used work dir without --resume
        import shutil

        shutil.rmtree(work)
    work.parent.mkdir(parents=True, exist_ok=True)
    train = ["train", str(data_file), "--model", args.model, "--seed", str(seed), "--work-dir", str(work),
             "--result", str(work.parent / f"{name}.train.json")]
    train += ["--streams", "j,b,jm,bm" if "streams" in variant else "j"]
    if "init" in variant:
        train += ["--init", args.init]
    train += ["--set", "data.num_workers=1", "device=cpu", *args.set]
    row = {"run": name, "variant": name.split("_", 2)[2].rsplit("_s", 1)[0], "seed": seed,
           "command": "skelact " + " ".join(train[:1] + train[2:]),
           "start": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_start": round(os.getloadavg()[0], 2)}
    row["train_s"] = round(cli(train, work.parent / f"{name}.train.log", threads), 1)
    for ck in ("last", "best"):
        if (work / f"{ck}.pt").exists():
            cli(["test", "--checkpoint", str(work / f"{ck}.pt"), "--out-dir", str(work / f"test_{ck}")],
                work.parent / f"{name}.test_{ck}.log", threads)
            m = json.loads((work / f"test_{ck}" / "metrics.json").read_text())
            row[f"top1_{ck}"] = round(100 * m["top1"], 2)
            row[f"mca_{ck}"] = round(100 * m["mean_class_acc"], 2)
    row["load_end"] = round(os.getloadavg()[0], 2)
    row["train_clips"] = len(load_annotations(data_file)["split"]["train"])
    atomic_write(work / "result.json", lambda f: f.write(json.dumps(row, indent=2).encode()))
    return row


def write_summary(out: Path) -> None:
    """``OUT/summary.md`` and ``summary.json`` from every ``runs/*/result.json``."""
    rows = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/result.json"))]
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        ds, n, rest = r["run"].split("_", 2)
        cells.setdefault((ds, n, rest.rsplit("_s", 1)[0]), []).append(r)

    def order(key: tuple) -> tuple:
        return key[0], 10**9 if key[1] == "full" else int(key[1]), key[2]

    lines = [f"Machine: {cpu_model()}, {os.cpu_count()} cores. Top-1 % on the test split, 10 views; single models "
             "`last.pt` (`best.pt` in brackets), ensembles `best.pt` (the only one they write).", "",
             "| dataset | clips per class | variant | train clips | seeds | top-1 per seed | mean | best.pt mean "
             "| train time (mean) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key in sorted(cells, key=order):
        rs = sorted(cells[key], key=lambda r: r["seed"])
        main_key = "top1_last" if "top1_last" in rs[0] else "top1_best"
        tops = [r[main_key] for r in rs]
        best = [r["top1_best"] for r in rs if "top1_best" in r]
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {rs[0]['train_clips']} | "
                     f"{','.join(str(r['seed']) for r in rs)} | {' / '.join(f'{t:.2f}' for t in tops)} | "
                     f"**{np.mean(tops):.2f}** | {np.mean(best):.2f} | "
                     f"{np.mean([r['train_s'] for r in rs]) / 60:.1f} min |")
    with _LOCK:
        atomic_write(out / "summary.md", lambda f: f.write(("\n".join(lines) + "\n").encode()))
        atomic_write(out / "summary.json", lambda f: f.write(json.dumps(rows, indent=2).encode()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    ap.add_argument("--shared", type=Path, default=shared_default(), help="the shared data folder")
    ap.add_argument("--out", type=Path, required=True, help="output folder (shared by datasets and sittings)")
    ap.add_argument("--per-class", default="5,10,20,50,full", help="training clips per class, or full")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default="scratch,streams", help="of scratch, streams, init, init-streams")
    ap.add_argument("--init", default=None, help="the --init checkpoint or shipped name of the init variant")
    ap.add_argument("--model", default="kpc3d")
    ap.add_argument("--tag", default="", help="appended to the variant's name (another recipe via --set)")
    ap.add_argument("--jobs", type=int, default=1, help="runs at once, each with 2 // jobs threads (min 1)")
    ap.add_argument("--threads", type=int, default=None, help="threads per run (default 2 // jobs, min 1)")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="passed to skelact train")
    args = ap.parse_args()
    variants = args.variants.split(",")
    if any("init" in v for v in variants) and not args.init:
        ap.error("--variants init needs --init CKPT|NAME")
    out = args.out.resolve()
    (out / "data").mkdir(parents=True, exist_ok=True)
    convert_args, file_name = DATASETS[args.dataset]
    full = out / "data" / file_name
    if not full.exists():
        cli(["convert", convert_args[0], str(args.shared / "data" / convert_args[1]), "-o", str(full)],
            out / "data" / f"{args.dataset}.convert.log", 2)
    data = load_annotations(full)

    jobs = []
    for n in args.per_class.split(","):
        for seed in map(int, args.seeds.split(",")):
            data_file = out / "data" / f"{args.dataset}_{n}_s{seed}.pkl"
            if not data_file.exists():
                save_annotations(subset(data, None if n == "full" else int(n), seed), data_file, force=True)
            for v in variants:
                name = f"{args.dataset}_{n}_{args.model}-{v}{args.tag}_s{seed}"
                jobs.append((name, data_file, v, seed))
    threads = args.threads or max(1, 2 // args.jobs)

    def one(job: tuple) -> None:
        name, data_file, v, seed = job
        try:
            r = run_one(out, name, data_file, v, seed, args, threads)
        except SkelactFailed as e:
            print(f"{name}: {e}", flush=True)
            return
        print(f"{name}: top-1 last {r.get('top1_last', '-')} best {r.get('top1_best', '-')}, "
              f"train {r['train_s']:.0f} s (load {r['load_start']})", flush=True)
        write_summary(out)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, jobs))
    write_summary(out)
    print((out / "summary.md").read_text())


if __name__ == "__main__":
    main()
