"""The top-down front end (skelact.pose.topdown): the detection plan, merging, and real mosaics of many small people."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from skelact.data.tracking import PoseResult
from skelact.pose.topdown import TopDownPose, _spans, detection_plan, merge_people

cv2 = pytest.importorskip("cv2")


# ---------------------------------------------------------------------------------------------
# The plan: which calls one detection makes


@pytest.mark.parametrize(("length", "window", "overlap"), [(1280, 432, 108), (720, 432, 108), (1000, 999, 50),
                                                            (300, 432, 108), (4000, 200, 150)])
def test_spans_cover_with_overlap(length: int, window: float, overlap: float) -> None:
    spans = _spans(length, window, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == pytest.approx(length)
    for (_, a1), (b0, b1) in zip(spans, spans[1:], strict=False):
        assert a1 - b0 >= overlap - 1e-6  # neighbours share at least the overlap
        assert b1 - b0 == pytest.approx(min(window, length))
    # No more windows than needed: one fewer would leave a gap or a smaller overlap.
    if len(spans) > 2:
        n = len(spans) - 1
        step = (length - window) / (n - 1)
        assert window - step < overlap


def test_plan_720p_tiles_at_the_smallest_persons_scale() -> None:
    full, tiles, overlap = detection_plan(720, 1280, full_input=256, tile_input=384, min_height=1 / 8)
    assert full.region == (0, 0, 1280, 720) and full.input_hw() == (160, 256)
    scale = 64 / 90  # a 90-px person (1/8 of 720) is 64 px tall in a tile's input
    assert overlap == pytest.approx(1.2 * 90)
    assert all(t.scale == pytest.approx(scale) for t in tiles)
    assert {t.input_hw() for t in tiles} == {(384, 384)}
    # The tiles cover the frame.
    cover = np.zeros((720, 1280), bool)
    for t in tiles:
        x0, y0, x1, y1 = (int(round(v)) for v in t.region)
        cover[y0:y1, x0:x1] = True
    assert cover.all()
    assert len(tiles) == 6  # 3 columns x 2 rows of 540-px tiles


def test_plan_small_frames_and_large_people_need_no_tiles() -> None:
    # People at least a quarter of a 360p frame are 90 px: the whole frame at input 256 (scale 0.4) is not
    # enough, but the frame fits one call at the needed scale.
    full, tiles, _ = detection_plan(360, 640, min_height=1 / 4)
    assert len(tiles) == 1 and tiles[0].region == (0, 0, 640, 360)
    assert tiles[0].scale == pytest.approx(64 / 90)
    # Half the frame's height: the whole-frame call already has the scale.
    assert detection_plan(360, 640, min_height=1 / 2)[1] == []
    # Never enlarged: a tiny frame is posed at its own size.
    full, tiles, _ = detection_plan(120, 160, min_height=1 / 8)
    assert all(t.scale <= 1.0 for t in tiles)


def test_split_parts_overlap_and_cover() -> None:
    full, tiles, overlap = detection_plan(720, 1280)
    parts = tiles[0].split(overlap)
    x0, y0, x1, y1 = tiles[0].region
    assert len(parts) == 4 and all(p.scale == tiles[0].scale for p in parts)
    assert min(p.region[0] for p in parts) == x0 and max(p.region[2] for p in parts) == x1
    assert min(p.region[1] for p in parts) == y0 and max(p.region[3] for p in parts) == y1
    left, right = parts[0].region, parts[2].region
    assert left[2] - right[0] == pytest.approx(overlap)


# ---------------------------------------------------------------------------------------------
# Merging detections of one person


def _person(x: float, y: float, h: float, score: float, seen: slice = slice(None)) -> PoseResult:
    """A synthetic upright person h px tall at (x, y) (top-left of the box)."""
    rng = np.random.default_rng(int(x * 7 + y))
    kp = np.stack([x + rng.uniform(0, h / 3, 17), y + np.linspace(0, h, 17)], -1).astype(np.float32)
    sc = np.zeros(17, np.float32)
    sc[seen] = 0.9
    box = np.array([kp[sc > 0, 0].min(), kp[sc > 0, 1].min(), kp[sc > 0, 0].max(), kp[sc > 0, 1].max()], np.float32)
    return PoseResult(kp[None], sc[None], box[None], np.array([score], np.float32))


def _cat(*people: PoseResult) -> PoseResult:
    return PoseResult(*(np.concatenate([getattr(p, f) for p in people]) for f in
                        ("keypoints", "scores", "boxes", "person_scores")))


def test_merge_keeps_one_per_person() -> None:
    a = _person(100, 100, 120, 0.9)
    a_cut = _person(100, 100, 120, 0.95, slice(0, 8))  # the same person cut by a tile edge: upper joints only
    a_cut.keypoints += 3  # found in another tile, a few pixels apart
    b = _person(400, 100, 120, 0.8)
    hug = _person(100, 100, 120, 0.7)
    hug.keypoints[..., 0] += 20  # another person pressed against a: every joint 20 px (17 % of h) away
    hug.boxes[:, [0, 2]] += 20
    people = _cat(a, a_cut, b, hug)
    merged = merge_people(people)
    assert len(merged) == 3
    assert sorted(merged.person_scores.tolist()) == pytest.approx([0.7, 0.8, 0.95])
    # With the cut one ranked last (it touches a tile edge), the whole one is kept.
    merged = merge_people(people, priority=np.array([0.9, 0.4, 0.8, 0.7], np.float32))
    assert sorted(merged.person_scores.tolist()) == pytest.approx([0.7, 0.8, 0.9])
    assert merge_people(PoseResult.empty()).keypoints.shape == (0, 17, 2)


class _Scene:
    """A stand-in for MoveNet over a fixed scene: a crop finds the bodies whose box centre it holds; a
    detection pass finds ``detections`` (what the test sets for the frame)."""

    input_size, min_person_score = 256, 0.2

    def __init__(self, bodies: PoseResult) -> None:
        self.bodies, self.detections = bodies, bodies

    def pose_region(self, frame: np.ndarray, region: tuple, in_h: int, in_w: int, bgr: bool = True,
                    scale: float | None = None, min_score: float | None = None) -> PoseResult:
        if scale is not None:  # the whole frame or a tile
            return self.detections
        b = self.bodies.boxes
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        inside = (cx >= region[0]) & (cx < region[2]) & (cy >= region[1]) & (cy < region[3])
        return PoseResult(*(getattr(self.bodies, f)[inside] for f in ("keypoints", "scores", "boxes", "person_scores")))


def test_a_detection_that_is_someone_followed_once_posed_is_not_a_second_person() -> None:
    """At a detection frame the pass sees a followed body displaced (its joints 25 px off, its box over by
    more than half its width): unlike anyone followed, so it is posed on its own crop, which finds the
    followed body itself."""
    body = _person(100, 100, 120, 0.9)
    scene = _Scene(body)
    td = TopDownPose(scene, detect_every=1)  # type: ignore[arg-type]
    frame = np.zeros((720, 1280, 3), np.uint8)
    assert len(td(frame)) == 1
    off = _person(100, 100, 120, 0.8)
    off.keypoints[..., 0] += 25  # a fifth of the height: too far to be them, near enough to be followed
    off.boxes[:, [0, 2]] += 25
    scene.detections = off
    for _ in range(3):
        got = td(frame)
        assert len(got) == 1 and np.array_equal(got.boxes, body.boxes)
        assert len(td._people) == 1  # followed once, not twice


class _Slow(_Scene):
    """A crop worker that takes its time and says when it is done."""

    def __init__(self, scene: _Scene) -> None:
        super().__init__(scene.bodies)
        self.done = False

    def pose_region(self, *args, **kwargs) -> PoseResult:
        import time

        time.sleep(0.3)
        self.done = True
        return super().pose_region(*args, **kwargs)


class _Broken(_Scene):
    def pose_region(self, *args, **kwargs) -> PoseResult:
        raise RuntimeError("interpreter failed")


def test_a_failing_crop_worker_raises_after_the_others_are_done() -> None:
    """An error in one worker reaches the caller only once every worker has stopped: a worker still running
    would share its model copy with the next frame's call."""
    from concurrent.futures import ThreadPoolExecutor

    scene = _Scene(_cat(_person(100, 100, 120, 0.9), _person(600, 100, 120, 0.8)))
    td = TopDownPose(scene, detect_every=1)  # type: ignore[arg-type]
    frame = np.zeros((720, 1280, 3), np.uint8)
    assert len(td(frame)) == 2
    slow = _Slow(scene)
    td._crop_models = [_Broken(scene.bodies), slow]  # type: ignore[list-item]
    td._pool = ThreadPoolExecutor(2)
    with pytest.raises(RuntimeError, match="interpreter failed"):
        td(frame)
    assert slow.done


def test_crop_workers_default_to_the_models_threads_at_most_a_ceiling(model) -> None:
    """A model with 64 threads (a large host) gets MAX_CROP_WORKERS one-thread copies, not 64."""
    from types import SimpleNamespace

    from skelact.pose.topdown import MAX_CROP_WORKERS

    many = SimpleNamespace(model_path=model.model_path, input_size=model.input_size,
                           min_person_score=model.min_person_score, num_threads=64)
    td = TopDownPose(many)  # type: ignore[arg-type]
    assert len(td._crop_models) == MAX_CROP_WORKERS < 64
    assert all(m.num_threads == 1 for m in td._crop_models)


def test_arguments_are_checked(model) -> None:
    for kwargs, word in [({"detect_every": 0}, "detect_every"), ({"crop_size": 100}, "crop_size"),
                         ({"min_height": 0}, "min_height"), ({"min_height": 1.5}, "min_height"),
                         ({"crop_workers": 0}, "crop_workers")]:
        with pytest.raises(ValueError, match=word):
            TopDownPose(model, **kwargs)


# ---------------------------------------------------------------------------------------------
# Real frames: the NTU clip, alone and tiled small


def _frames(video: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    out = []
    while len(out) < n:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


def _mosaic(frame: np.ndarray, k: int) -> np.ndarray:
    """The frame tiled k x k into 1280 x 720: 2 k^2 people, each 1/k of their size at 720p."""
    small = cv2.resize(frame, (1280 // k, 720 // k), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.tile(small, (k, k, 1))[:720, :1280])


@pytest.fixture(scope="module")
def clip(sample_video: Path) -> list[np.ndarray]:
    return _frames(sample_video, 12)


def test_finds_more_than_the_cap_of_six_in_a_crowd(model, clip: list[np.ndarray]) -> None:
    """18 people about 120 px tall: the one-stage call at input 256 finds almost none; top-down finds them all,
    each at the right place, every frame."""
    frames = [_mosaic(f, 3) for f in clip[:4]]
    assert len(model(frames[0])) < 6
    td = TopDownPose(model, detect_every=4)
    for f in frames:
        got = td(f)
        assert len(got) == 18
        centres = (got.boxes[:, :2] + got.boxes[:, 2:]) / 2
        cells = {(int(cx // (1280 / 3)), int(cy // (720 / 3))) for cx, cy in centres}
        assert len(cells) == 9  # two people in each cell
        assert (got.scores > 0.3).mean() > 0.7


def test_follows_the_same_people_between_detections(model, clip: list[np.ndarray]) -> None:
    td = TopDownPose(model, detect_every=100)  # one detection, then crops only
    first = td(clip[0])
    assert len(first) == 2
    calls = td.calls
    for f in clip[1:]:
        got = td(f)
        assert len(got) == 2
        # Each person moves little from frame to frame: the followed boxes stay on them.
        assert td.calls - calls == 2
        calls = td.calls
    # The keypoints agree with the one-stage model on the full 1920x1080 frame at input 256 (people are large).
    whole = model(clip[-1])
    d = np.abs(got.keypoints[:, None] - whole.keypoints[None, :2]).mean((-1, -2))  # [2 followed, 2 whole]
    assert d.min(1).max() < 0.05 * (got.boxes[:, 3] - got.boxes[:, 1]).min()


def test_crops_posed_side_by_side_give_the_same_people(model, clip: list[np.ndarray]) -> None:
    """Two workers (one-thread copies of the model) pose the 18 crops of a 3x3 mosaic exactly as one does."""
    frames = [_mosaic(f, 3) for f in clip[:4]]
    one, two = TopDownPose(model, detect_every=3, crop_workers=1), TopDownPose(model, detect_every=3, crop_workers=2)
    for f in frames:
        a, b = one(f), two(f)
        assert len(a) == 18 and np.array_equal(a.keypoints, b.keypoints) and np.array_equal(a.scores, b.scores)
    assert one.calls == two.calls


def test_reset_forgets_and_repeats(model, clip: list[np.ndarray]) -> None:
    td = TopDownPose(model, detect_every=3)
    one = [td(f) for f in clip[:5]]
    td.reset()
    two = [td(f) for f in clip[:5]]
    for a, b in zip(one, two, strict=True):
        assert np.array_equal(a.keypoints, b.keypoints) and np.array_equal(a.person_scores, b.person_scores)


def test_nobody_in_an_empty_frame(model) -> None:
    td = TopDownPose(model)
    for _ in range(3):
        assert len(td(np.zeros((720, 1280, 3), np.uint8))) == 0


def test_a_crowd_already_followed_costs_one_more_call_not_four(model, clip: list[np.ndarray]) -> None:
    """At the second detection the 32 people are followed: a tile that hits the cap of 6 is looked at again
    with them blacked out (one call), not split in four; nobody is lost or doubled."""
    frames = [_mosaic(f, 4) for f in clip[:3]]
    td = TopDownPose(model, detect_every=2)
    calls = []
    for f in frames:
        before = td.calls
        got = td(f)
        calls.append(td.calls - before)
        assert 30 <= len(got) <= 32
    crops = len(got)
    first_detection = calls[0] - crops
    second_detection = calls[2] - crops
    assert second_detection < first_detection


def test_one_body_seen_twice_is_one_person() -> None:
    """The same box with left and right joints swapped, and a fragment of a body inside its box, are the body;
    two people pressed together with boxes that overlap are not."""
    body = _person(100, 100, 120, 0.9)
    swapped = _person(100, 100, 120, 0.8)
    swapped.keypoints[0, :, 0] = 2 * (body.boxes[0, 0] + body.boxes[0, 2]) / 2 - body.keypoints[0, :, 0]  # mirrored
    swapped.boxes[:] = body.boxes
    fragment = _person(100, 160, 60, 0.5, slice(8, 17))  # 9 lower-body joints, its box inside the body's
    fragment.keypoints[..., 0] += 15  # misplaced, as a fragment's joints are
    beside = _person(140, 100, 120, 0.7)  # another person, a third of their box over the body's
    merged = merge_people(_cat(body, swapped, fragment, beside))
    assert sorted(merged.person_scores.tolist()) == pytest.approx([0.7, 0.9])
