"""Who does what, when: one streaming analysis engine for long videos and live streams.

    tracks.py        classification of tracked people: whole tracks or sliding windows, in batches
    timeline.py      sliding windows -> per-frame labels -> timeline rows (CSV, JSON, PNG)
    segmentation.py  frame accuracy, edit score and F1@k of a predicted segmentation
    overlay.py       annotated frames: skeletons and labels in track colours, a top-k panel
    live.py          the live loop: predictions every N frames, JSON lines, video file, web page
    server.py        the local web page: MJPEG stream and the current top-k per person

Frames (``pose/video.py``), the pose front end (``pose/options.py``) and the tracked people
(``pose/tracks.py``, ``pose/buffers.py``) come from the pose layer, shared with ``extract``.

Importing this package is cheap; OpenCV, the pose runtime and torch load when they are used.
"""
