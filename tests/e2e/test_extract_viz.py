"""A video to skeletons and back: `skelact extract` on the real NTU video, `info`, then `viz` over the video."""

from __future__ import annotations

from skelact.cli import main


def test_extract_then_viz_on_the_ntu_video(data_root, models_root, tmp_path, capsys):
    video = data_root / "videos" / "ntu_sample.avi"
    pkl = tmp_path / "v.pkl"
    model = models_root / "movenet_multipose_lightning_f16.tflite"
    assert main(["extract", str(video), "-o", str(pkl), "--pose-model", str(model), "--quiet"]) == 0
    assert main(["info", str(pkl)]) == 0
    assert "frames: min 72" in capsys.readouterr().out
    out = tmp_path / "v.mp4"
    assert main(["viz", str(pkl), "--out", str(out), "--video", str(video)]) == 0
    import cv2

    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 72
