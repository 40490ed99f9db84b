"""The video overlay (skelact.stream.overlay): a label above each person, in the track's colour."""

from __future__ import annotations

import numpy as np
from synthetic import stick_person
from videos import colour_pixels

from skelact.viz.draw import person_color


def test_label_above_each_person_in_track_colour() -> None:
    from skelact.inference import Prediction
    from skelact.stream.overlay import Painter, PersonView
    from skelact.viz.draw import draw_person_label

    unsure = Prediction([("golf_swing", 0.31), ("bowl", 0.2)], np.array([0.31, 0.2]), ["golf_swing", "bowl"], 30, 1,
                        unknown=True)
    sure = Prediction([("bowl", 0.9)], np.array([0.1, 0.9]), ["golf_swing", "bowl"], 30, 1)
    kp1, sc1, _ = stick_person(200, 200)
    kp2, sc2, _ = stick_person(215, 205)  # close by: the two labels must not overlap
    black = np.zeros((360, 640, 3), np.uint8)
    painter = Painter((360, 640))
    views = [PersonView(1, kp1, sc1, unsure.describe(), unsure), PersonView(2, kp2, sc2, sure.describe(), sure)]
    out = painter.paint(black, views)
    plain = painter.paint(black, [PersonView(v.person, v.keypoint, v.score, None, v.current) for v in views])
    assert out.shape == (360, 640 + 200, 3) and painter.size == (840, 360)
    changed = np.argwhere((out != plain).any(-1))  # the labels only
    assert changed[:, 0].max() < 200 - 6 and changed[:, 1].min() > 50  # above the heads (y < top joint)
    for person in (1, 2):
        assert colour_pixels(out[:194, :640], person_color(person)) > 30
    assert unsure.describe() == "unknown action (closest: golf_swing, 0.31)"
    boxes: list = []
    for kp, text in ((kp1, "a label"), (kp2, "another label")):
        draw_person_label(black.copy(), kp, None, text, (255, 255, 255), avoid=boxes)
    (a, b) = boxes
    assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
    assert draw_person_label(black, np.zeros((17, 2)), None, "x", (255, 255, 255)) is None  # nobody to label
