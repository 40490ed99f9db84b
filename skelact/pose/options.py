"""The pose front end: its options in one place, and the type every front end has.

:class:`PoseOptions` is what the command line (``cli/common.py`` ``pose_options``), folder
extraction (sent to its worker processes, so it is picklable) and the benchmark hold;
:meth:`PoseOptions.build` is the one place a front end is constructed from them. Whatever it
builds is a :class:`PoseModel`: a callable from one BGR frame to the :class:`PoseResult` of the
people in it, with a ``reset`` the video pipeline calls at the start of every video (a front end
may remember the previous frame's people; one object serves one video at a time).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from skelact.data.tracking import PoseResult

__all__ = ["PoseModel", "PoseOptions", "reset_pose"]


class PoseModel(Protocol):
    """A pose front end: ``frame_bgr`` uint8 [H, W, 3] -> the people in it; ``reset`` before a new video."""

    def __call__(self, frame_bgr: np.ndarray) -> PoseResult: ...

    def reset(self) -> None: ...


def reset_pose(pose: object) -> None:
    """Call ``pose.reset()`` if it has one (a plain function posing frames has no state to forget)."""
    reset = getattr(pose, "reset", None)
    if callable(reset):
        reset()


@dataclass
class PoseOptions:
    """How to build the pose front end.

    Attributes:
        model: The MoveNet MultiPose ``.tflite`` (None: ``$SKELACT_POSE_MODEL``, the user cache, a download).
        input_size: Model input for a whole frame, longer side, a multiple of 32.
        threads: Interpreter threads (None: all cores).
        min_person_score: People below this person score are dropped.
        download: Allow a one-time download when the model is nowhere.
        topdown: Find people over the whole frame and tiles, then pose each on their own crop
            (``skelact.pose.topdown``: people of any size, no cap at 6); False: one MoveNet call per
            whole frame at ``input_size`` (faster; misses people under ~a quarter of the frame's
            height and returns at most 6).
        min_height: Top-down: the smallest person to find, as a fraction of the frame height.
        detect_every: Top-down: frames between two searches for new people.
        crop_size: Top-down: network input side of a person's crop, a multiple of 32.
    """

    model: Path | None = None
    input_size: int = 256
    threads: int | None = None
    min_person_score: float = 0.2
    download: bool = True
    topdown: bool = True
    min_height: float = 1 / 8
    detect_every: int = 10
    crop_size: int = 128

    def settings(self) -> dict[str, tuple[object, str]]:
        """What changes the poses found, each with the option that sets it (for a resumed extraction);
        the top-down settings are None for the whole-frame front end."""
        td = self.topdown
        return {"input_size": (self.input_size, "--input-size"),
                "front_end": ("topdown" if td else "whole-frame", "--front-end"),
                "min_height": (round(self.min_height, 6) if td else None, "--min-person-height"),
                "detect_every": (self.detect_every if td else None, "--detect-every"),
                "crop_size": (self.crop_size if td else None, "--crop-size")}

    def build(self) -> PoseModel:
        """The front end these options describe (loads the model; a bad model file fails here).

        Raises:
            PoseModelError: The model file is missing, cannot be downloaded, or is not a MoveNet model.
            ValueError: A top-down setting out of range.
        """
        from skelact.pose.movenet import MoveNet
        from skelact.pose.topdown import TopDownPose

        model = MoveNet(self.model, input_size=self.input_size, min_person_score=self.min_person_score,
                        num_threads=self.threads, download=self.download)
        if not self.topdown:
            return model
        return TopDownPose(model, detect_every=self.detect_every, crop_size=self.crop_size, min_height=self.min_height)
