"""MoveNet MultiPose Lightning: finding the pose model file and running it on frames.

The model (Google, Apache-2.0) is a float16 TFLite file run with ``ai-edge-litert``. It takes a
uint8 RGB image [1, H, W, 3] with H and W multiples of 32 and returns [1, 6, 56]: for up to six
people, 17 COCO joints × (y, x, score) normalised to the input, then the box (ymin, xmin, ymax,
xmax) and a person score.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from pathlib import Path
from types import ModuleType

import numpy as np

from skelact.data.io import atomic_path
from skelact.data.tracking import NUM_JOINTS, PoseResult
from skelact.errors import SkelactError, one_line
from skelact.files import native_path
from skelact.progress import progress as progress_bar

__all__ = [
    "MODEL_FILENAME",
    "MODEL_URL",
    "MODEL_SHA256",
    "MODEL_SIZE",
    "ENV_VAR",
    "PoseModelError",
    "MoveNet",
    "resolve_pose_model",
    "default_cache_path",
    "download_pose_model",
]

MODEL_FILENAME = "movenet_multipose_lightning_f16.tflite"
MODEL_URL = "https://tfhub.dev/google/lite-model/movenet/multipose/lightning/tflite/float16/1?lite-format=tflite"
MODEL_SHA256 = "d4489f89e6bd6777a8b9a1a16189832131f84ff90d82fae729e670b84d7948dd"
MODEL_SIZE = 9_585_276
ENV_VAR = "SKELACT_POSE_MODEL"

_MAX_PEOPLE, _OUT_WIDTH = 6, 56  # output [1, 6, 17 * 3 + 5]


class PoseModelError(SkelactError, FileNotFoundError):
    """The pose model file is missing, cannot be downloaded, or is not a MoveNet model."""


def import_cv2() -> ModuleType:
    """Import OpenCV, or fail with the extra to install."""
    try:
        import cv2
    except ImportError:
        raise ImportError('video support needs OpenCV: pip install "skelact[pose]"') from None
    return cv2


# --------------------------------------------------------------------------------------------
# Locating the model file


def default_cache_path() -> Path:
    """Where a downloaded model is kept: ``$XDG_CACHE_HOME/skelact/`` (default ``~/.cache``)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "skelact" / MODEL_FILENAME


def _where_to_put_it(cache: Path) -> str:
    return (f"download it from {MODEL_URL} and save it as {cache}, or set {ENV_VAR}=/path/to/{MODEL_FILENAME}, "
            f"or pass --pose-model PATH")


def download_pose_model(dest: Path, url: str | None = None, sha256: str = MODEL_SHA256,
                        progress: bool = True) -> Path:
    """Download the model to ``dest`` through a temporary file, checking its sha256.

    Nothing is left at ``dest`` (or beside it) unless the whole file arrived with the right hash.

    Raises:
        OSError: Network or file errors (``http.client.HTTPException`` for a broken transfer).
        ValueError: The file's sha256 is not ``sha256``.
    """
    url = url or MODEL_URL
    digest = hashlib.sha256()
    with atomic_path(dest, suffix=".part") as tmp:
        with open(tmp, "wb") as f, urllib.request.urlopen(url, timeout=30) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with progress_bar(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}",
                              enabled=progress, leave=True) as bar:
                while chunk := resp.read(1 << 16):
                    f.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != sha256:
            raise ValueError(f"checksum mismatch for {url}: got sha256 {digest.hexdigest()}, expected {sha256}")
    return dest


def resolve_pose_model(path: str | Path | None = None, download: bool = True) -> Path:
    """Find the MoveNet model file.

    Order: ``path`` → ``$SKELACT_POSE_MODEL`` → the user cache (:func:`default_cache_path`) →
    a one-time download into the cache (when ``download`` is true).

    Raises:
        PoseModelError: A named file is missing, or the model is nowhere and cannot be downloaded;
            the message says where to put it.
    """
    if path is not None and str(path) != "":
        p = Path(path).expanduser()
        if not p.is_file():
            raise PoseModelError(f"{p}: pose model file not found")
        return p
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise PoseModelError(f"{p}: pose model file not found (set by {ENV_VAR})")
        return p
    cache = default_cache_path()
    if cache.is_file():
        return cache
    if not download:
        raise PoseModelError(f"pose model not found; {_where_to_put_it(cache)}")
    try:
        return download_pose_model(cache)
    except (OSError, ValueError, http.client.HTTPException) as e:
        raise PoseModelError(
            f"pose model not found and the download failed ({one_line(e)}); {_where_to_put_it(cache)}"
        ) from None


# --------------------------------------------------------------------------------------------
# Running the model


def check_frame(frame: np.ndarray) -> None:
    """Refuse anything but a uint8 [H, W, 3] image (what every pose front end takes)."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected a uint8 [H, W, 3] frame, got {frame.dtype} {list(frame.shape)}")


class MoveNet:
    """MoveNet MultiPose Lightning on CPU (TFLite through ``ai-edge-litert``).

    A frame is resized so that its longer side is ``input_size`` (aspect kept) and padded at the
    bottom/right to multiples of 32; outputs are mapped back to the original frame's pixels.

    Args:
        model_path: The ``.tflite`` file; ``None`` resolves it with :func:`resolve_pose_model`.
        input_size: Longer side of the network input, a multiple of 32 (256 is the model's default).
        min_person_score: People below this person score are dropped.
        num_threads: CPU threads for the interpreter (default: all cores).
        download: Allow :func:`resolve_pose_model` to download the model.
    """

    def __init__(self, model_path: str | Path | None = None, input_size: int = 256, min_person_score: float = 0.2,
                 num_threads: int | None = None, download: bool = True) -> None:
        if input_size < 32 or input_size % 32:
            raise ValueError(f"input_size must be a positive multiple of 32, got {input_size}")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ImportError('the pose model needs ai-edge-litert: pip install "skelact[pose]"') from None
        self.model_path = resolve_pose_model(model_path, download=download)
        self.input_size = input_size
        self.min_person_score = min_person_score
        self.num_threads = num_threads or os.cpu_count() or 1
        name = native_path(self.model_path, "pose model")  # LiteRT cannot take a name that is not UTF-8
        try:
            self._interp = Interpreter(model_path=name, num_threads=self.num_threads)
        except (ValueError, RuntimeError) as e:
            raise PoseModelError(f"{self.model_path}: not a valid TFLite model ({e})") from None
        inp, out = self._interp.get_input_details(), self._interp.get_output_details()
        if (len(inp) != 1 or len(out) != 1 or inp[0]["dtype"] != np.uint8
                or tuple(out[0]["shape_signature"])[1:] != (_MAX_PEOPLE, _OUT_WIDTH)):
            raise PoseModelError(f"{self.model_path}: not a MoveNet MultiPose model "
                                 f"(expected uint8 input and output [1, 6, 56])")
        self._in_index, self._out_index = inp[0]["index"], out[0]["index"]
        # One interpreter per input shape: re-planning one interpreter costs 1-4 ms a switch, and a
        # top-down front end alternates between the full frame, tiles and person crops every frame.
        self._interps: dict[tuple[int, int], Interpreter] = {}
        self._interp_class = Interpreter
        self._cv2 = import_cv2()

    def _interpreter(self, in_h: int, in_w: int):  # -> Interpreter planned for [1, in_h, in_w, 3]
        interp = self._interps.get((in_h, in_w))
        if interp is None:
            if not self._interps:
                interp = self._interp
            else:
                if len(self._interps) >= 8:  # frames of changing size: keep memory bounded
                    self._interps.pop(next(iter(self._interps)))
                interp = self._interp_class(model_path=native_path(self.model_path, "pose model"),
                                            num_threads=self.num_threads)
            interp.resize_tensor_input(self._in_index, [1, in_h, in_w, 3], strict=False)
            interp.allocate_tensors()
            self._interps[(in_h, in_w)] = interp
        return interp

    def reset(self) -> None:
        """Nothing to forget: each frame is posed on its own (the ``PoseModel`` protocol's start of a video)."""

    def input_shape(self, h: int, w: int) -> tuple[int, int, float]:
        """Network input (height, width) for an h×w frame, and the frame→input scale."""
        scale = self.input_size / max(h, w)
        rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
        return -(-rh // 32) * 32, -(-rw // 32) * 32, scale

    def run(self, x: np.ndarray) -> np.ndarray:
        """The raw network output [6, 56] for an input uint8 RGB [1, H, W, 3] (H, W multiples of 32)."""
        interp = self._interpreter(x.shape[1], x.shape[2])
        interp.set_tensor(self._in_index, x)
        interp.invoke()
        return interp.get_tensor(self._out_index)[0]

    def pose_region(self, frame: np.ndarray, region: tuple[float, float, float, float], in_h: int, in_w: int,
                    bgr: bool = True, scale: float | None = None, min_score: float | None = None) -> PoseResult:
        """Pose the people in a region of a frame (parts outside the frame are black).

        The region (x0, y0, x1, y1 in frame pixels) is scaled to fit ``in_h`` x ``in_w`` (aspect kept,
        padded at the bottom/right), or by ``scale``; the people are returned in frame pixels, clipped to
        the frame. ``min_score`` replaces ``min_person_score`` for this call.
        """
        cv2 = self._cv2
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = (int(round(v)) for v in region)
        if scale is None:
            scale = min(in_h / max(1, y1 - y0), in_w / max(1, x1 - x0))
        rh, rw = max(1, min(in_h, round((y1 - y0) * scale))), max(1, min(in_w, round((x1 - x0) * scale)))
        cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)  # the part inside the frame
        x = np.zeros((1, in_h, in_w, 3), np.uint8)
        if cx1 > cx0 and cy1 > cy0:
            # Bilinear, as the model's reference preprocessing (tf.image.resize_with_pad) does.
            ox0, oy0 = round((cx0 - x0) * scale), round((cy0 - y0) * scale)
            ox1, oy1 = min(rw, round((cx1 - x0) * scale)), min(rh, round((cy1 - y0) * scale))
            if ox1 > ox0 and oy1 > oy0:
                part = cv2.resize(frame[cy0:cy1, cx0:cx1], (ox1 - ox0, oy1 - oy0), interpolation=cv2.INTER_LINEAR)
                x[0, oy0:oy1, ox0:ox1] = cv2.cvtColor(part, cv2.COLOR_BGR2RGB) if bgr else part
        out = self.run(x)
        keep = out[:, 55] >= (self.min_person_score if min_score is None else min_score)
        out = out[keep][np.argsort(-out[keep, 55], kind="stable")]
        if len(out) == 0:
            return PoseResult.empty()
        kp = out[:, :51].reshape(-1, NUM_JOINTS, 3)  # [P, 17, (y, x, score)] in [0, 1] of the padded input
        xy = np.stack([kp[..., 1] * in_w / scale + x0, kp[..., 0] * in_h / scale + y0], axis=-1)  # frame px
        xy[..., 0] = np.clip(xy[..., 0], 0, w - 1)
        xy[..., 1] = np.clip(xy[..., 1], 0, h - 1)
        box = out[:, 51:55]  # ymin, xmin, ymax, xmax
        boxes = np.stack([box[:, 1] * in_w / scale + x0, box[:, 0] * in_h / scale + y0,
                          box[:, 3] * in_w / scale + x0, box[:, 2] * in_h / scale + y0], axis=-1)
        boxes = np.clip(boxes, 0, [w - 1, h - 1, w - 1, h - 1])
        return PoseResult(
            keypoints=xy.astype(np.float32),
            scores=kp[..., 2].astype(np.float32),
            boxes=boxes.astype(np.float32),
            person_scores=out[:, 55].astype(np.float32),
        )

    def __call__(self, frame: np.ndarray, bgr: bool = True) -> PoseResult:
        """Detect people in one frame, letterboxed whole into the network input.

        Args:
            frame: uint8 [H, W, 3], BGR as OpenCV decodes it (``bgr=False`` for RGB).
            bgr: Channel order of ``frame``.
        """
        check_frame(frame)
        h, w = frame.shape[:2]
        in_h, in_w, scale = self.input_shape(h, w)
        return self.pose_region(frame, (0, 0, w, h), in_h, in_w, bgr, scale)
