"""The one evaluation path (issue #26): `skelact test`, `skelact calibrate`, training's calibration and
`Predictor.predict_clips` score clips through `skelact.inference.score_clips` and agree to the bit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import skelact.engine.calibrate as calibrate_module
import skelact.inference as inference
from skelact.checkpoint import Checkpoint
from skelact.cli import main
from skelact.data.dataset import PackedClips
from skelact.data.io import load_annotations
from skelact.engine.calibrate import calibrate
from skelact.inference import Predictor, ScoreOptions, load_predictor, score_clips, view_probs

pytestmark = pytest.mark.usefixtures("one_thread")


_TIMELINE_FIELDS = ("timeline_threshold", "timeline_accept", "timeline_flagged")


def _clips(data: Path, names: list[str]) -> list[dict]:
    """The annotations of ``data`` named ``names``, in that order."""
    by_name = {a["frame_dir"]: a for a in load_annotations(data)["annotations"]}
    return [by_name[n] for n in names]


def test_test_calibrate_and_predictor_give_the_same_probabilities(run: dict[str, Path], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(calibrate_module, "MIN_FIT_CLIPS", 1)  # the tiny run's few test clips fit a temperature
    cal, out = tmp_path / "cal.pt", tmp_path / "test"
    assert main(["calibrate", str(run["ckpt"]), "-o", str(cal), "--split", "test"]) == 0
    assert main(["test", "--checkpoint", str(cal), "--out-dir", str(out)]) == 0
    capsys.readouterr()
    with np.load(out / "scores.npz") as z:
        probs, names = z["probs"], z["names"].tolist()
    stored = Checkpoint.load(cal).calibration
    assert stored is not None and stored.temperature != 1.0  # else the temperature would go untested

    # Predictor (predict, demo, live, streams) on the same clips, batched as `test` batches them.
    predictor = load_predictor(cal)
    k = predictor.cfg.data.num_clips_test
    preds = predictor.predict_clips(_clips(run["data"], names), batch_size=max(1, predictor.cfg.data.batch_size // k))
    assert np.array_equal(np.stack([p.probs for p in preds]), probs)
    # One unknown rule: what predict says per clip is the rate `test` reports.
    unknown = [p.unknown for p in preds]
    assert unknown == stored.unknown(probs).tolist()
    assert json.loads((out / "metrics.json").read_text())["unknown_rate"] == pytest.approx(np.mean(unknown))

    # `calibrate` fitted on the logits of the same path: the fit on them is the calibration it stored,
    # and those logits at its temperature are `test`'s probabilities.
    packed = PackedClips.from_pickle(run["data"])
    scores = score_clips(load_predictor(run["ckpt"]), packed, packed.indices("test"))
    assert [packed.names[i] for i in packed.indices("test")] == names
    fitted = calibrate(scores.logits, scores.labels, "test")  # calibrate's timeline threshold is fitted after
    assert fitted == dataclasses.replace(stored, **{f: None for f in _TIMELINE_FIELDS}, timeline_data="")
    assert np.array_equal(view_probs(scores.logits, stored.temperature), probs)


def test_training_calibrates_as_skelact_calibrate_does(run: dict[str, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("last.pt", "best.pt"):
        trained = Checkpoint.load(run["work"] / name).calibration
        assert trained is not None
        out = tmp_path / name
        assert main(["calibrate", str(run["work"] / name), "-o", str(out)]) == 0  # on training's validation clips
        # `skelact calibrate` also fits the timeline's own threshold, which training leaves out
        assert dataclasses.replace(Checkpoint.load(out).calibration, **{f: None for f in _TIMELINE_FIELDS},
                                   timeline_data="") == trained
    capsys.readouterr()


def test_every_user_scores_through_score_clips(run: dict[str, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[tuple[str, int]] = []

    def spy(predictor: Predictor, clips: object, *args: object, **kwargs: object) -> inference.Scores:
        scores = score_clips(predictor, clips, *args, **kwargs)  # type: ignore[arg-type]
        calls.append((type(clips).__name__, len(scores.probs)))
        return scores

    monkeypatch.setattr(inference, "score_clips", spy)
    assert main(["test", "--checkpoint", str(run["ckpt"]), "--out-dir", str(tmp_path / "t")]) == 0
    assert main(["calibrate", str(run["ckpt"]), "-o", str(tmp_path / "c.pt")]) == 0
    load_predictor(run["ckpt"]).predict_clip(_clips(run["data"], ["c0_00"])[0])
    capsys.readouterr()
    test_clips = len(PackedClips.from_pickle(run["data"]).indices("test"))
    # test, calibrate (then its timeline fit, windows of joined clips), predict_clip
    assert calls[:2] == [("PackedClips", test_clips), ("PackedClips", test_clips)] and calls[-1] == ("list", 1)
    assert all(kind == "list" for kind, _ in calls[2:])


def test_flip_doubles_the_views_and_shards_gather_back(run: dict[str, Path]) -> None:
    predictor = load_predictor(run["ckpt"])
    packed = PackedClips.from_pickle(run["data"])
    idx = packed.indices("test")
    plain = score_clips(predictor, packed, idx, ScoreOptions(num_clips=2))
    both = score_clips(predictor, packed, idx, ScoreOptions(num_clips=2, flip=True))
    assert both.logits.shape == (len(idx), 4, len(predictor.classes))
    assert np.array_equal(both.logits[:, :2], plain.logits)
    assert not np.array_equal(both.logits[:, 2:], plain.logits)  # the flipped views are other inputs

    # Two "ranks" each score their rank::2 share; the gather puts them back in the split's order.
    shards = [score_clips(predictor, packed, idx, ScoreOptions(num_clips=2, clips_per_batch=1), shard=(r, 2))
              for r in range(2)]
    local = [(s.logits, s.labels) for s in shards]
    whole = score_clips(predictor, packed, idx, ScoreOptions(num_clips=2, clips_per_batch=1), shard=(0, 2),
                        gather=lambda _: local)
    single = score_clips(predictor, packed, idx, ScoreOptions(num_clips=2, clips_per_batch=1))
    assert np.array_equal(whole.logits, single.logits) and np.array_equal(whole.labels, single.labels)
