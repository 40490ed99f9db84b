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
        self._in_shape: tuple[int, ...] | None = None
        self._cv2 = import_cv2()

    def reset(self) -> None:
        """Nothing to forget: each frame is posed on its own (the ``PoseModel`` protocol's start of a video)."""

    def input_shape(self, h: int, w: int) -> tuple[int, int, float]:
        """Network input (height, width) for an h×w frame, and the frame→input scale."""
        scale = self.input_size / max(h, w)
        rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
        return -(-rh // 32) * 32, -(-rw // 32) * 32, scale

    def _prepare(self, frame: np.ndarray, bgr: bool) -> tuple[np.ndarray, float]:
        """Letterbox a frame into the network input [1, H_in, W_in, 3] uint8 RGB."""
        cv2 = self._cv2
        h, w = frame.shape[:2]
        in_h, in_w, scale = self.input_shape(h, w)
        rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
        # Bilinear, as the model's reference preprocessing (tf.image.resize_with_pad) does.
        small = cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_LINEAR)
        if bgr:
            small = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        x = np.zeros((1, in_h, in_w, 3), np.uint8)
        x[0, :rh, :rw] = small  # pad bottom/right: input pixel / scale = original pixel
        return x, scale

    def __call__(self, frame: np.ndarray, bgr: bool = True) -> PoseResult:
        """Detect people in one frame.

        Args:
            frame: uint8 [H, W, 3], BGR as OpenCV decodes it (``bgr=False`` for RGB).
            bgr: Channel order of ``frame``.
        """
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"expected a uint8 [H, W, 3] frame, got {frame.dtype} {list(frame.shape)}")
        h, w = frame.shape[:2]
        x, scale = self._prepare(frame, bgr)
        if x.shape != self._in_shape:  # re-plan the graph only when the frame size changes
            self._interp.resize_tensor_input(self._in_index, list(x.shape), strict=False)
            self._interp.allocate_tensors()
            self._in_shape = x.shape
        self._interp.set_tensor(self._in_index, x)
        self._interp.invoke()
        out = self._interp.get_tensor(self._out_index)[0]  # [6, 56]
        in_h, in_w = x.shape[1:3]

        keep = out[:, 55] >= self.min_person_score
        out = out[keep][np.argsort(-out[keep, 55], kind="stable")]
        if len(out) == 0:
            return PoseResult.empty()
        kp = out[:, :51].reshape(-1, NUM_JOINTS, 3)  # [P, 17, (y, x, score)] in [0, 1] of the padded input
        xy = np.stack([kp[..., 1] * in_w, kp[..., 0] * in_h], axis=-1) / scale  # [P, 17, 2] original pixels
        xy[..., 0] = np.clip(xy[..., 0], 0, w - 1)
        xy[..., 1] = np.clip(xy[..., 1], 0, h - 1)
        box = out[:, 51:55]  # ymin, xmin, ymax, xmax
        boxes = np.stack([box[:, 1] * in_w, box[:, 0] * in_h, box[:, 3] * in_w, box[:, 2] * in_h], axis=-1) / scale
        boxes = np.clip(boxes, 0, [w - 1, h - 1, w - 1, h - 1])
        return PoseResult(
            keypoints=xy.astype(np.float32),
            scores=kp[..., 2].astype(np.float32),
            boxes=boxes.astype(np.float32),
            person_scores=out[:, 55].astype(np.float32),
        )
