"""Who does what, when: one streaming analysis engine for long videos and live streams.

    source.py        frames from a file, a camera or a network stream (capture thread, newest frame only)
    tracks.py        frames -> pose -> online tracker -> per-track keypoint buffers -> classification
    buffers.py       per-track keypoint buffers (whole tracks offline, ring buffers live)
    timeline.py      sliding windows -> per-frame labels -> timeline rows (CSV, JSON, PNG)
    segmentation.py  frame accuracy, edit score and F1@k of a predicted segmentation
    overlay.py       annotated frames: skeletons and labels in track colours, a top-k panel
    live.py          the live loop: predictions every N frames, JSON lines, video file, web page
    server.py        the local web page: MJPEG stream and the current top-k per person

Importing this package is cheap; OpenCV, the pose runtime and torch load when they are used.
"""
