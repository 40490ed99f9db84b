"""A folder of videos → a PYSKL dataset: labels from class folders, a split, shards, resumable and parallel.

Input layouts (:func:`scan_videos`):

    ROOT/<class>/<video>     labelled: classes are the sorted folder names (videos may lie deeper in a
                             class folder); ``frame_dir`` is the path relative to ROOT without extension
    ROOT/<video>             unlabelled (``label = -1``, no classes), as are lists of video files

:func:`extract_folder` runs the pose model on every video of the folder (or of one shard of it:
every N-th of the sorted list), in one or several processes, records each finished video in a
progress folder (``skelact.pose.resume``) and assembles the dataset file from it at the end,
with a report of the videos that failed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import multiprocessing
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path

from skelact.data.io import atomic_write, save_annotations
from skelact.data.splits import SplitError, path_key, read_split_file, stratified_split
from skelact.errors import printable
from skelact.pose.extract import VIDEO_EXTENSIONS, extract_video, find_videos, is_video
from skelact.pose.options import PoseModel, PoseOptions
from skelact.pose.resume import ResumeStore, failures_path, lock_output
from skelact.pose.video import VideoError
from skelact.progress import progress as progress_bar

__all__ = ["VideoItem", "VideoSet", "ExtractResult", "scan_videos", "parse_shard", "shard_items",
           "dataset_split", "folder_annotations", "extract_videos", "extract_folder", "write_failures"]


@dataclass(frozen=True)
class VideoItem:
    """One input video.

    Attributes:
        path: The file.
        key: Its id: the path relative to the scanned folder with ``/`` (Unicode NFC), or, for a list
            of files, the resolved path. Splits and progress entries are keyed by it.
        frame_dir: The clip's name in the dataset (``key`` without extension; with it where two
            videos differ only in their extension).
        label: Class index, -1 for unlabelled videos.
    """

    path: Path
    key: str
    frame_dir: str
    label: int = -1


@dataclass
class VideoSet:
    """The videos of the inputs, sorted by key, and what the scan noticed.

    Attributes:
        items: The videos.
        root: The folder scanned (None for a list of files).
        classes: Class names (label order), or None when unlabelled.
        warnings: Things the user should know (e.g. a class folder without videos, skipped).
        ignored: Files that are not videos (by extension) and were left out.
    """

    items: list[VideoItem]
    root: Path | None = None
    classes: list[str] | None = None
    warnings: list[str] = field(default_factory=list)
    ignored: int = 0

    @property
    def where(self) -> str:
        return str(self.root) if self.root is not None else "the inputs"


def _walk(folder: Path) -> tuple[list[Path], int]:
    """Videos under ``folder`` (recursively, hidden entries skipped) and the count of other files."""
    videos, ignored = [], 0
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            p = Path(dirpath) / name
            if is_video(p):
                videos.append(p)
            else:
                ignored += 1
    return videos, ignored


def _frame_dirs(keys: list[str]) -> list[str]:
    """``key`` without extension, or with it where two keys would otherwise share a name."""
    stems = [k[: len(k) - len(Path(k).suffix)] for k in keys]
    count = Counter(stems)
    return [s if count[s] == 1 else k for s, k in zip(stems, keys, strict=True)]


def _no_videos(where: Path) -> VideoError:
    return VideoError(f"{where}: no videos found ({', '.join(e[1:] for e in VIDEO_EXTENSIONS)})")


def _scan_folder(root: Path) -> VideoSet:
    entries = sorted((p for p in root.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)
    direct = [p for p in entries if p.is_file() and is_video(p)]
    ignored = sum(1 for p in entries if p.is_file() and not is_video(p))
    per_class: dict[str, list[Path]] = {}
    for d in (p for p in entries if p.is_dir()):
        videos, n = _walk(d)
        if path_key(d.name) in per_class:
            raise VideoError(f"{d}: another class folder has the same name in another Unicode form; rename one")
        per_class[path_key(d.name)] = videos
        ignored += n
    labelled = {c: v for c, v in per_class.items() if v}
    if direct and labelled:
        first = next(iter(labelled))
        raise VideoError(f"{root}: holds videos directly ({direct[0].name}) and in class folders ({first}/); put "
                         "every video in a class folder ROOT/<class>/<video>, or all of them directly in ROOT")
    if not direct and not labelled:
        raise _no_videos(root)
    if not labelled:  # flat: sub-folders (none holds a video) are not classes
        keys = [path_key(p.name) for p in direct]
        return VideoSet(_items(direct, keys), root, None, [], ignored)
    warnings = [f"{root / c}: no videos, class skipped" for c, v in per_class.items() if not v]
    classes = sorted(labelled)
    paths = [p for c in classes for p in labelled[c]]
    keys = [path_key(p.relative_to(root).as_posix()) for p in paths]
    labels = [i for i, c in enumerate(classes) for _ in labelled[c]]
    return VideoSet(_items(paths, keys, labels), root, classes, warnings, ignored)


def _items(paths: list[Path], keys: list[str], labels: list[int] | None = None) -> list[VideoItem]:
    """Items sorted by key (refusing two files whose keys are equal)."""
    order = sorted(range(len(keys)), key=keys.__getitem__)
    for i, j in zip(order, order[1:], strict=False):
        if keys[i] == keys[j]:
            raise VideoError(f"{paths[j]}: has the same name as {paths[i]} in another Unicode form; rename one")
    frame_dirs = _frame_dirs([keys[i] for i in order])
    return [VideoItem(paths[i], keys[i], f, -1 if labels is None else labels[i])
            for i, f in zip(order, frame_dirs, strict=True)]


def scan_videos(inputs: Sequence[str | Path] | str | Path) -> VideoSet:
    """The videos to extract: one folder (labelled by class folders, or flat), or a list of files/folders.

    Args:
        inputs: A folder ``ROOT``, or several video files and/or flat folders (each contributes the
            videos directly in it; all unlabelled, named by file stem).

    Raises:
        VideoError: A missing input, a folder without videos, a folder that mixes videos and class
            folders, or two listed videos with the same file name.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    inputs = [Path(p) for p in inputs]
    for p in inputs:
        if not p.exists():
            raise VideoError(f"{p}: no such file or folder")
    if len(inputs) == 1 and inputs[0].is_dir():
        return _scan_folder(inputs[0])
    if not inputs:
        raise VideoError("no input videos")
    paths: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = find_videos(p)
            if not found:
                if _walk(p)[0]:  # videos in sub-folders: a labelled dataset, which must be the only input
                    raise VideoError(f"{p}: holds its videos in class folders (ROOT/<class>/<video>); extract "
                                     "a labelled folder alone, not with other inputs")
                raise _no_videos(p)
            paths += found
        else:
            paths.append(p)
    keys = [str(p.resolve()) for p in paths]
    names = [path_key(p.name) for p in paths]
    by_key: dict[str, Path] = {}
    by_name: dict[str, Path] = {}
    for p, key, name in zip(paths, keys, names, strict=True):
        if key in by_key:
            raise VideoError(f"{p}: given twice")
        if name in by_name:
            raise VideoError(f"{p}: has the same file name as {by_name[name]}; clip names would clash (put the "
                             "videos in one folder tree and pass its root instead)")
        by_key[key] = by_name[name] = p
    # Clip names are the file stems (a.mp4 and a.avi keep their extension), in the order given.
    frame_dirs = _frame_dirs(names)
    return VideoSet([VideoItem(p, k, f) for p, k, f in zip(paths, keys, frame_dirs, strict=True)])


def parse_shard(text: str) -> tuple[int, int]:
    """``'K/N'`` → ``(K, N)`` with ``0 <= K < N`` (K as a job array index that starts at 0).

    Raises:
        ValueError: Not two integers, or K outside [0, N).
    """
    m = re.fullmatch(r"\s*(\d{1,9})\s*/\s*(\d{1,9})\s*", text)
    if not m:
        raise ValueError(f"expected K/N with integers 0 <= K < N (e.g. 0/4), got {text[:40]!r}")
    k, n = int(m[1]), int(m[2])
    if n < 1 or k >= n:
        raise ValueError(f"K must be in [0, N) (shards are numbered from 0), got {k}/{n}")
    return k, n


def shard_items(items: Sequence[VideoItem], shard: tuple[int, int] | None) -> list[VideoItem]:
    """Every N-th video of the sorted list, starting at the K-th; all of them for ``None``."""
    if shard is None:
        return list(items)
    k, n = shard
    if not 0 <= k < n:
        raise ValueError(f"shard must satisfy 0 <= K < N, got {k}/{n}")
    return list(items[k::n])


def dataset_split(videos: VideoSet, val_fraction: float | None = None, split_file: Path | None = None,
                  seed: int = 0) -> tuple[dict[str, list[str]] | None, list[str]]:
    """The split of the whole folder by key: stratified (``val_fraction``), from ``split_file``, or all
    ``train`` for a labelled folder without either; None for unlabelled videos.

    Returns:
        ``(split, notes)``; notes say what happened to classes of one video.

    Raises:
        SplitError: Both sources given, a split asked for unlabelled videos, or a bad split file.
    """
    if val_fraction is not None and split_file is not None:
        raise SplitError("give a val fraction or a split file, not both")
    if videos.classes is None:
        if val_fraction is not None or split_file is not None:
            raise SplitError(f"{videos.where}: a split needs labelled videos in class folders "
                             "(ROOT/<class>/<video>); these videos are unlabelled")
        return None, []
    keys = [it.key for it in videos.items]
    if split_file is not None:
        aliases = {it.frame_dir: it.key for it in videos.items}
        return read_split_file(split_file, keys, aliases, where=videos.where), []
    if val_fraction is None:
        return {"train": keys}, []
    split = stratified_split(keys, [it.label for it in videos.items], val_fraction, seed)
    sizes = Counter(it.label for it in videos.items)
    single = [videos.classes[c] for c, n in sorted(sizes.items()) if n == 1]
    notes = []
    if single and val_fraction > 0:
        notes.append(f"{len(single)} class(es) with a single video, in train only (no val video): "
                     + ", ".join(single[:5]) + (", ..." if len(single) > 5 else ""))
    return split, notes


def folder_annotations(videos: VideoSet, done: dict[str, dict], split: dict[str, list[str]] | None) -> dict:
    """The PYSKL dict of the extracted videos (``done``: key → annotation), in the order of ``videos``.

    Labels and ``frame_dir`` come from ``videos``; each split keeps its members that were extracted.
    """
    anns, name = [], {}
    for it in videos.items:
        if it.key in done:
            anns.append({**done[it.key], "frame_dir": it.frame_dir, "label": it.label})
            name[it.key] = it.frame_dir
    data: dict = {"split": {}, "annotations": anns, "layout": "coco17"}
    if split is not None:
        data["split"] = {s: [name[k] for k in members if k in name] for s, members in split.items()}
    if videos.classes is not None:
        data["classes"] = list(videos.classes)
    return data


# --------------------------------------------------------------------------------------------
# Running the pose model over many videos


def _extract_one(model: PoseModel, path: Path, max_persons: int, min_frames: int) -> tuple[dict | None, str | None]:
    """``(annotation, None)``, or ``(None, reason)`` for a video that cannot be used."""
    try:
        return extract_video(path, model, max_persons=max_persons, progress=False, min_frames=min_frames), None
    except VideoError as e:
        reason = str(e)
        for prefix in (f"{path}: ", f"{printable(path)}: "):  # the report names the path in its own column
            if reason.startswith(prefix):
                return None, reason[len(prefix):]
        return None, reason


_worker_model: PoseModel | None = None  # one per pose process, built by _init_worker


def _exit_with_parent() -> None:
    # A killed parent (SIGKILL) cannot stop its pool, and a worker holds both ends of the task
    # queue, so it would wait for work forever: end it when the parent process is gone.
    from multiprocessing.connection import wait as wait_for

    parent = multiprocessing.parent_process()
    if parent is not None:
        wait_for([parent.sentinel])
        os._exit(1)


def _init_worker(options: PoseOptions) -> None:
    global _worker_model
    threading.Thread(target=_exit_with_parent, name="exit with parent", daemon=True).start()
    _worker_model = options.build()


def _work(path: str, max_persons: int, min_frames: int) -> tuple[dict | None, str | None]:
    assert _worker_model is not None
    return _extract_one(_worker_model, Path(path), max_persons, min_frames)


def _run(items: Sequence[VideoItem], model: PoseModel, workers: int, options: PoseOptions | None, max_persons: int,
         min_frames: int) -> Iterator[tuple[VideoItem, dict | None, str | None]]:
    """Each video's result, in the order they finish; ``workers`` > 1 runs pose processes, each with
    its own front end built from ``options`` (the model file resolved, no download)."""
    if workers <= 1 or len(items) <= 1 or options is None:
        for it in items:
            yield (it, *_extract_one(model, it.path, max_persons, min_frames))
        return
    # spawn: a fresh interpreter per worker (no forked TFLite or decoder threads); a few videos in
    # flight per worker keeps them busy while memory and Ctrl-C latency stay bounded.
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(min(workers, len(items)), mp_context=ctx, initializer=_init_worker,
                               initargs=(options,))
    todo = iter(items)
    pending: dict[Future, VideoItem] = {}
    try:
        while True:
            while len(pending) < 2 * workers and (it := next(todo, None)) is not None:
                pending[pool.submit(_work, str(it.path), max_persons, min_frames)] = it
            if not pending:
                break
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                it = pending.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:  # a worker was killed, or crashed in native code (decoder, model)
                    raise VideoError(f"a pose process died while extracting one of: "
                                     f"{', '.join(str(p.path) for p in [it, *pending.values()])}; finished videos "
                                     "are kept, run the same command with --resume to continue") from None
                yield (it, *result)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what a job scheduler granted, not the whole node
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def extract_videos(inputs: Sequence[str | Path] | str | Path, model: PoseModel, max_persons: int = 2,
                   progress: bool = True) -> tuple[dict, list[tuple[Path, str]]]:
    """Extract skeletons from a folder or a list of videos in this process, in memory, skipping failures.

    Args:
        inputs: See :func:`scan_videos`.
        model: A pose front end (see ``skelact.pose.options``).
        max_persons: People kept per video.
        progress: Show a progress bar.

    Returns:
        ``(data, failures)``: the dataset (labels and classes for a labelled folder, all in ``train``)
        and ``(path, message naming the path)`` for each video skipped.

    Raises:
        VideoError: No video in the inputs, or none could be processed.
    """
    videos = scan_videos(inputs)
    done, failures = {}, []
    with progress_bar(total=len(videos.items), unit="video", desc="extract", enabled=progress, leave=True) as bar:
        for it, ann, reason in _run(videos.items, model, 1, None, max_persons, 1):
            if ann is None:
                failures.append((it.path, f"{it.path}: {reason}"))
                bar.write(f"warning: skipped {it.path}: {reason}")
            else:
                done[it.key] = ann
            bar.update()
    if not done:
        raise VideoError(f"none of the {len(videos.items)} video(s) could be processed: "
                         + "; ".join(f"{p}: {r}" for p, r in failures[:3]))
    return folder_annotations(videos, done, dataset_split(videos)[0]), failures


@dataclass
class ExtractResult:
    """What :func:`extract_folder` did.

    Attributes:
        data: The dataset written.
        failures: ``(path, reason)`` of each video of this run (or shard) that failed.
        videos: The whole folder's videos.
        selected: Videos of this run (the shard's).
        resumed: Of those, finished by an earlier run.
        frames: Frames processed by this run (successful videos).
        seconds: Wall time of the pose work.
        notes: Remarks for the summary (e.g. classes of one video).
        extracted: Videos this run extracted successfully (``selected - resumed`` less its failures).
    """

    data: dict
    failures: list[tuple[Path, str]]
    videos: VideoSet
    selected: int
    resumed: int
    frames: int
    seconds: float
    notes: list[str]
    extracted: int = 0


def write_failures(path: Path, failures: Sequence[tuple[Path, str]]) -> Path:
    """The failures report: CSV with a header ``path,reason`` and one row per failed video."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "reason"])
    w.writerows([printable(p), printable(r)] for p, r in failures)  # names that are not UTF-8 escaped
    data = buf.getvalue().encode()
    return atomic_write(path, lambda f: f.write(data))


def extract_folder(inputs: Sequence[str | Path] | str | Path, output: str | Path, *,
                    pose: PoseOptions | None = None, max_persons: int = 2, min_frames: int = 8,
                    val_fraction: float | None = None, split_file: str | Path | None = None, seed: int = 0,
                    shard: tuple[int, int] | None = None, workers: int = 1, resume: bool = False,
                    force: bool = False, progress: bool = True) -> ExtractResult:
    """Extract a folder of videos (or one shard of it) into a dataset file, resumably.

    Every check of the inputs (folder, split, shard, pose model, progress folder) runs before the first
    video. Each finished video is recorded in the progress folder (``skelact.pose.resume``); at the
    end the dataset is written atomically to ``output``, the failed videos to
    ``<output>.failures.csv`` (only when some failed), and the progress folder is removed.

    Args:
        inputs: A folder ``ROOT`` (``ROOT/<class>/<video>`` or flat) or video files (see :func:`scan_videos`).
        output: The dataset ``.pkl``.
        pose: The pose front end (default ``PoseOptions()``: the model found as
            ``skelact.pose.movenet.resolve_pose_model`` does); ``threads`` None means the cores this
            process may use, divided among the workers.
        max_persons: People kept per video.
        min_frames: Shorter videos fail as too short.
        val_fraction: Stratified ``train``/``val`` split of each class (see ``skelact.data.splits``).
        split_file: Or: a list of ``relative/path.mp4 train|val|test`` lines.
        seed: Seed of the stratified split.
        shard: ``(K, N)``: extract every N-th video from the K-th; the split is the whole folder's.
        workers: Pose processes.
        resume: Continue the progress folder of an interrupted run (its settings must match).
        force: Overwrite an existing ``output``.
        progress: Show a progress bar (videos, frames/s, ETA) and each failed video on stderr (warnings
            about the folder are printed either way).

    Raises:
        VideoError: No usable input, an empty shard, or no video could be extracted.
        SplitError: A bad split request or split file.
        ResumeError: A progress folder in the way (no ``resume``) or from other settings.
        FileExistsError: ``output`` exists and ``force`` is false.
    """

    from skelact import __version__
    from skelact.pose.movenet import resolve_pose_model

    output = Path(output)
    if workers < 1 or max_persons < 1 or min_frames < 1:
        raise ValueError(f"workers, max_persons and min_frames must be >= 1, got {workers}, {max_persons}, "
                         f"{min_frames}")
    if output.exists() and not force:
        raise FileExistsError(f"{output}: already exists (use --force to overwrite)")
    videos = scan_videos(inputs)
    split, notes = dataset_split(videos, val_fraction, None if split_file is None else Path(split_file), seed)
    selected = shard_items(videos.items, shard)
    if not selected:
        raise VideoError(f"{videos.where}: shard {shard[0]}/{shard[1]} has no videos (there are "
                         f"{len(videos.items)}; use at most that many shards)")
    for w in videos.warnings:
        print(f"warning: {w}", file=sys.stderr)

    pose = pose or PoseOptions()
    model_path = resolve_pose_model(pose.model, download=pose.download)
    # The workers load the file found here (never a download each) with their share of the cores.
    pose = replace(pose, model=model_path, threads=pose.threads or max(1, _cores() // workers), download=False)
    model = pose.build()  # a bad model fails here
    front_end = pose.settings()
    settings = {"pose_model_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
                **{k: v for k, (v, _) in front_end.items()}, "max_persons": max_persons, "min_frames": min_frames,
                "skelact": __version__,
                "inputs": [str(Path(p).resolve()) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)],
                "shard": None if shard is None else f"{shard[0]}/{shard[1]}"}
    labels = {"pose_model_sha256": "the pose model of sha256", **{k: o for k, (_, o) in front_end.items()},
              "max_persons": "--max-persons", "min_frames": "--min-frames", "skelact": "skelact version",
              "inputs": "the inputs", "shard": "--shard"}
    output.parent.mkdir(parents=True, exist_ok=True)
    # One run per output, from the first look at the progress folder to the last write: a second
    # run (a --resume started too early) would remove or rewrite the files this one is using.
    with lock_output(output):
        store = ResumeStore(output)
        present = store.open(settings, resume, labels)
        todo = [it for it in selected if store.entry_name(it.key) not in present]
        resumed = len(selected) - len(todo)
        if progress and resumed:
            print(f"resuming: {resumed} of {len(selected)} videos already done", file=sys.stderr)

        frames, extracted, start = 0, 0, time.perf_counter()
        try:
            with progress_bar(total=len(selected), initial=resumed, unit="video", desc="extract", enabled=progress,
                              leave=True) as bar:
                for it, ann, reason in _run(todo, model, workers, pose, max_persons, min_frames):
                    store.save(it.key, ann, reason)
                    if ann is None:
                        if progress:
                            bar.write(f"failed: {it.path}: {reason}")
                    else:
                        frames += ann["total_frames"]
                        extracted += 1
                    bar.update()
                    bar.set_postfix_str(f"{frames / max(time.perf_counter() - start, 1e-9):.1f} frames/s")
        except KeyboardInterrupt:
            print(f"progress kept in {store.folder}; run the same command with --resume to continue",
                  file=sys.stderr)
            raise
        seconds = time.perf_counter() - start

        done, failures = {}, []
        for it in selected:
            ann, reason = store.load(it.key)
            if ann is None:
                failures.append((it.path, reason))
            else:
                done[it.key] = ann
        report = failures_path(output)
        if failures:
            write_failures(report, failures)
        else:
            report.unlink(missing_ok=True)  # a report of an earlier run would describe another output
        if not done:
            store.remove()
            raise VideoError(f"none of the {len(selected)} video(s) could be extracted (reasons in {report}): "
                             + "; ".join(f"{p}: {r}" for p, r in failures[:2]))
        data = folder_annotations(videos, done, split)
        save_annotations(data, output, force=True, allow_unlabeled=videos.classes is None)
        store.remove()
        return ExtractResult(data, failures, videos, len(selected), resumed, frames, seconds, notes, extracted)
