"""Defaults of ``skelact predict --window``, in one cheap module (the CLI imports it at start-up).

The window lengths (seconds), the stride as a fraction of each length, ``--min-segment`` (seconds)
and the test views per window: benchmarks/segmentation.py --tune chose them on Penn Action train
sequences. The timeline's unknown threshold is fitted for them (``skelact.stream.fitting``).
"""

__all__ = ["DEFAULT_WINDOWS", "DEFAULT_STRIDE_FRACTION", "DEFAULT_MIN_SEGMENT", "DEFAULT_WINDOW_VIEWS"]

DEFAULT_WINDOWS = (0.6, 0.85, 1.2, 1.7, 2.4, 3.39, 4.8, 6.79, 9.6, 13.58)
DEFAULT_STRIDE_FRACTION = 1 / 6
DEFAULT_MIN_SEGMENT = 0.5
DEFAULT_WINDOW_VIEWS = 1
